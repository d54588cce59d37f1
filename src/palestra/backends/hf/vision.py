"""What an image-text-to-text (vision) model needs beyond text: the conversation's images
decoded from their data: URLs, messages in the content-part shape that processor chat
templates read (`{"type": "image"}` where an image goes), and the processor's output: the
prompt ids with each image's tokens expanded, and the pixel tensors the first forward pass
takes.

The worker asks for the ids first (to count the prompt against the context) and the tensors
when decoding starts; `VisionPrompts` keeps the few processed prompts in between, so an
image is processed once. Image prompts never enter the prefix cache (the engine's rule):
their key/values depend on pixels that the ids do not show.
"""

from __future__ import annotations

import io
from collections import OrderedDict
from typing import Any

from palestra.core.images import decode_data_url
from palestra.core.types import Conversation

# The API server holds images to its own (smaller) limit before they get here.
MAX_IMAGE_BYTES = 64 * 2**20
KEPT_PROMPTS = 32


def messages_with_image_parts(conversation: Conversation) -> list[dict[str, Any]]:
    """The messages for the template; one with images gets content parts, images first
    (as LLaVA, Idefics and SmolVLM are trained), then its text."""
    out = []
    for message in conversation.messages:
        item = message.to_dict()
        if message.images:
            parts: list[dict[str, Any]] = [{"type": "image"} for _ in message.images]
            item["content"] = [*parts, {"type": "text", "text": message.content}]
        out.append(item)
    return out


def conversation_images(conversation: Conversation | None) -> tuple[str, ...]:
    """Every image URL of the conversation, in order."""
    if conversation is None:
        return ()
    return tuple(url for message in conversation.messages for url in message.images)


def _pil_images(urls: tuple[str, ...]) -> list[Any]:
    from PIL import Image

    images = []
    for which, url in enumerate(urls, start=1):
        data = decode_data_url(url, which, MAX_IMAGE_BYTES)
        images.append(Image.open(io.BytesIO(data)).convert("RGB"))
    return images


class VisionPrompts:
    """Processed image prompts, by (prompt text, image URLs): ids and pixel tensors."""

    def __init__(self, processor: Any):
        self.processor = processor
        self._kept: OrderedDict[tuple[str, tuple[str, ...]], tuple[list[int], dict[str, Any]]]
        self._kept = OrderedDict()

    def _processed(self, prompt: str, urls: tuple[str, ...]) -> tuple[list[int], dict[str, Any]]:
        key = (prompt, urls)
        if key in self._kept:
            self._kept.move_to_end(key)
            return self._kept[key]
        inputs = self.processor(
            text=prompt, images=_pil_images(urls), add_special_tokens=False, return_tensors="pt"
        )
        ids = inputs["input_ids"][0].tolist()
        tensors = {k: v for k, v in inputs.items() if k not in ("input_ids", "attention_mask")}
        self._kept[key] = (ids, tensors)
        while len(self._kept) > KEPT_PROMPTS:
            self._kept.popitem(last=False)
        return ids, tensors

    def prompt_ids(self, prompt: str, urls: tuple[str, ...]) -> list[int]:
        """The prompt's token ids with the image tokens expanded."""
        return self._processed(prompt, urls)[0]

    def take(self, prompt: str, urls: tuple[str, ...]) -> dict[str, Any]:
        """The tensors for the prompt's first forward pass (no longer kept afterwards)."""
        tensors = self._processed(prompt, urls)[1]
        self._kept.pop((prompt, urls), None)
        return tensors
