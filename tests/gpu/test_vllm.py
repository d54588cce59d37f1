"""GPU tier: the vLLM backend on the bundled model. Skipped without vllm and a CUDA GPU;
CI has neither."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import torch

from palestra.core.types import GenerationRequest, SamplingParams

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU"),
]
pytest.importorskip("vllm")


@pytest.fixture(scope="module")
def engine() -> Any:
    from palestra.backends.vllm import VLLMBackend

    backend = VLLMBackend.load(None, gpu_memory_utilization=0.3, dtype="float32")
    yield backend
    asyncio.run(backend.close())


def _run(backend: Any, question: str, **sampling: Any) -> list[Any]:
    async def collect() -> list[Any]:
        prompt = backend.chat_prompt([{"role": "user", "content": question}])
        request = GenerationRequest(prompt, SamplingParams(**sampling))
        return [chunk async for chunk in backend.generate(request)]

    return asyncio.run(collect())


def test_greedy_answers_match_the_transformers_backend(engine: Any) -> None:
    from palestra.backends.hf.backend import HFBackend

    reference = HFBackend.load(None, device="cuda", dtype="float32")
    for question in ["Hello! Who are you?", "What is 3 plus 4?", "What color is snow?"]:
        ours = _run(engine, question, temperature=0, max_tokens=40)
        theirs = _run(reference, question, temperature=0, max_tokens=40)
        assert "".join(c.text for c in ours) == "".join(c.text for c in theirs)
        assert ours[-1].usage == theirs[-1].usage and ours[-1].finish_reason == "stop"


def test_streams_deltas_with_stops_lengths_and_logprobs(engine: Any) -> None:
    chunks = _run(engine, "Hello! Who are you?", temperature=0, max_tokens=12, ignore_eos=True,
                  logprobs=True, top_logprobs=2)  # fmt: skip
    assert chunks[-1].finish_reason == "length" and chunks[-1].usage.completion_tokens == 12
    assert len(chunks) > 3 and sum(len(c.token_ids) for c in chunks) == 12
    assert all(len(lp.top) == 2 for c in chunks for lp in c.logprobs)
    full = "".join(c.text for c in chunks)
    stopped = _run(engine, "Hello! Who are you?", temperature=0, max_tokens=12, stop=("Palestra",))
    assert "".join(c.text for c in stopped) == full[: full.index("Palestra")]


def test_prompt_logprobs_match_the_transformers_backend(engine: Any) -> None:
    from palestra.backends.hf.backend import HFBackend

    hf = HFBackend.load(None, device="cpu")
    asked = {"temperature": 0, "max_tokens": 2, "prompt_logprobs": 2}
    (first, *_) = _run(engine, "What is 3 plus 4?", **asked)
    (reference, *_) = _run(hf, "What is 3 plus 4?", **asked)
    assert first.prompt_logprobs is not None and first.prompt_logprobs[0] is None
    assert len(first.prompt_logprobs) == len(reference.prompt_logprobs)
    for ours, theirs in zip(first.prompt_logprobs[1:], reference.prompt_logprobs[1:], strict=True):
        assert ours.keys() == theirs.keys()
        for token, (logprob, rank, _) in ours.items():
            assert logprob == pytest.approx(theirs[token][0], abs=1e-3) and rank == theirs[token][1]


def test_closing_the_stream_aborts_the_request(engine: Any) -> None:
    async def scenario() -> int:
        prompt = engine.chat_prompt([{"role": "user", "content": "Hi"}])
        params = SamplingParams(temperature=0, max_tokens=400, ignore_eos=True)
        stream = engine.generate(GenerationRequest(prompt, params, request_id="abort-me"))
        await stream.__anext__()
        await stream.aclose()
        await asyncio.sleep(0.5)
        return int(engine.engine.output_processor.get_num_unfinished_requests())

    assert asyncio.run(scenario()) == 0
