"""`ScriptedBackend`: a test double that implements the `Backend` interface with canned
replies, for tests of the rooms above the seam (workers, API, UI) and for scripted judges."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Sequence

from palestra.backends.base import Backend
from palestra.backends.options import ScriptedOptions
from palestra.core.types import GenerationChunk, GenerationRequest, Usage
from palestra.plugins import get_template
from palestra.templates.spec import ChatTemplate

Reply = str | Callable[[GenerationRequest], str]


class ScriptedBackend(Backend):
    """Answers each request with the next scripted reply (cycling), word by word."""

    name = "scripted"

    def __init__(
        self,
        replies: Sequence[Reply] = ("Hello from the scripted backend.",),
        model_name: str = "scripted",
        template: str = "chatml",
        delay: float = 0.0,
        capacity: int | None = None,
        vision: bool = False,
    ):
        self._capacity = capacity or ScriptedOptions().capacity
        self._vision = vision  # stands in for a vision model: takes images
        self._replies = list(replies)
        self._model_name = model_name
        self._template = get_template(template)
        self._delay = delay
        self.requests: list[GenerationRequest] = []

    @classmethod
    def from_file(
        cls, path: str | None, model_name: str | None = None, options: ScriptedOptions | None = None
    ) -> ScriptedBackend:
        """A script file: {"model_name": ..., "template": "chatml", "replies": [...],
        "vision": false, "delay": 0.0} (delay: seconds before each word)."""
        import json
        from pathlib import Path

        from palestra.core.errors import ModelNotFoundError

        if not path or not Path(path).is_file():
            raise ModelNotFoundError(
                f"the scripted backend needs --model-path pointing at a "
                f"JSON script file; got {path!r}"
            )
        script = json.loads(Path(path).read_text("utf-8"))
        return cls(
            script.get("replies") or [""],
            model_name=model_name or script.get("model_name", Path(path).stem),
            template=script.get("template", "chatml"),
            capacity=(options or ScriptedOptions()).capacity,
            vision=bool(script.get("vision", False)),
            delay=float(script.get("delay", 0.0)),
        )

    @property
    def model_name(self) -> str:
        return self._model_name

    @property
    def template(self) -> ChatTemplate:
        return self._template

    def count_tokens(self, text: str) -> int:
        return len(text.split())

    @property
    def capacity(self) -> int:
        return self._capacity

    @property
    def accepts_images(self) -> bool:
        return self._vision

    async def generate(self, request: GenerationRequest) -> AsyncIterator[GenerationChunk]:
        request = self.prepare(request)
        reply = self._replies[len(self.requests) % len(self._replies)]
        self.requests.append(request)
        text = reply(request) if callable(reply) else reply
        words = text.split(" ")
        limit = request.sampling.max_tokens
        for index, word in enumerate(words[:limit]):
            if self._delay:
                await asyncio.sleep(self._delay)
            yield GenerationChunk(text=word if index == 0 else " " + word)
        yield GenerationChunk(
            text="",
            finish_reason="length" if len(words) > limit else "stop",
            usage=Usage(self.count_tokens(request.prompt), min(len(words), limit)),
        )

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        return [[float(len(t)), float(len(t.split())), 1.0] for t in texts]
