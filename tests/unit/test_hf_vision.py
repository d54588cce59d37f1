"""The transformers backend with a vision model (the tests' tiny LLaVA): image prompts are
expanded by the processor, prefilled with their pixels and decoded in one batch with text
prompts, answered as they are when alone, and kept out of the prefix cache."""

from __future__ import annotations

import asyncio
import base64
from dataclasses import replace
from pathlib import Path

import pytest

from palestra.backends.hf.backend import HFBackend
from palestra.core.errors import InvalidRequestError
from palestra.core.types import Conversation, GenerationRequest, Message, SamplingParams
from tests.fakes.vision_model import IMAGE_TOKENS, build_tiny_vision_model, png_bytes

IMAGE = "data:image/png;base64," + base64.b64encode(png_bytes()).decode()
OTHER = "data:image/png;base64," + base64.b64encode(png_bytes(colour=(255, 0, 0))).decode()


@pytest.fixture(scope="module")
def backend(tmp_path_factory: pytest.TempPathFactory) -> HFBackend:
    folder = build_tiny_vision_model(tmp_path_factory.mktemp("tiny-llava"))
    return HFBackend.load(str(folder), device="cpu")


def _request(text: str, *images: str) -> GenerationRequest:
    return GenerationRequest(
        sampling=SamplingParams(temperature=0, max_tokens=16),
        conversation=Conversation((Message("user", text, images),)),
    )


async def _answer(backend: HFBackend, request: GenerationRequest) -> str:
    return "".join([chunk.text async for chunk in backend.generate(backend.prepare(request))])


def test_image_prompts_count_their_image_tokens(backend: HFBackend) -> None:
    with_image = backend.prepare(_request("What is this?", IMAGE))
    text_only = backend.prepare(_request("What is this?"))
    assert with_image.prompt_token_ids is not None and text_only.prompt_token_ids is None
    assert "<image>" in with_image.prompt
    image_id = backend.tokenizer.convert_tokens_to_ids("<image>")
    assert list(with_image.prompt_token_ids).count(image_id) == IMAGE_TOKENS


def test_images_and_text_in_one_batch_answer_as_alone(backend: HFBackend) -> None:
    requests = [
        _request("What is the capital of Italy?", IMAGE),
        _request("What is the capital of France?"),
        _request("What is the capital of Italy?", IMAGE, IMAGE),
    ]

    async def run() -> tuple[list[str], list[str]]:
        alone = [await _answer(backend, r) for r in requests]
        together = await asyncio.gather(*(_answer(backend, r) for r in requests))
        return alone, list(together)

    alone, together = asyncio.run(run())
    assert together == alone
    assert "Rome" in alone[0] and "Paris" in alone[1]
    engine = backend.engine
    assert engine is not None and engine.peak_batch >= 2
    image_id = backend.tokenizer.convert_tokens_to_ids("<image>")
    cached = [entry.ids.tolist() for entry in engine.prefix_cache._entries.values()]
    assert cached and not any(image_id in ids for ids in cached)  # text prompts only


def test_a_text_only_model_refuses_images(tmp_path: Path) -> None:
    text_model = HFBackend.load(None, device="cpu")
    with pytest.raises(InvalidRequestError, match="'palestra-tiny' does not accept images"):
        text_model.prepare(_request("What is this?", IMAGE))
    assert not text_model.accepts_images


def test_the_pixels_reach_the_model(backend: HFBackend) -> None:
    """Two pictures, same words: the first token's log-probability differs (the vision
    tower's features went in), and the same picture gives the same again."""

    def first_logprob(*images: str) -> float:
        request = _request("What is the capital of Italy?", *images)
        request = replace(request, sampling=replace(request.sampling, logprobs=True))

        async def run() -> float:
            chunks = [c async for c in backend.generate(backend.prepare(request))]
            return next(c.logprobs[0].logprob for c in chunks if c.logprobs)

        return asyncio.run(run())

    blue, red = first_logprob(IMAGE), first_logprob(OTHER)
    assert blue != pytest.approx(red, abs=1e-6)
    assert first_logprob(IMAGE) == pytest.approx(blue, abs=1e-5)
