"""The transformers engine in a process of its own (`--engine-process`), on the bundled
model: it answers exactly as the engine in the worker does (batched, sampled, stopped,
with logprobs, prompt logprobs, embeddings and structured output), a stopped stream
leaves its batch, a failed load fails in the worker with the engine's own error, and a
dead engine process fails its open requests and the health check instead of hanging."""

from __future__ import annotations

import asyncio
import json
import os
import signal
from collections.abc import Iterator
from typing import Any

import pytest

from palestra.backends.hf.backend import HFBackend
from palestra.core.errors import BackendError, InvalidRequestError, UnsupportedError
from palestra.core.types import GenerationRequest, SamplingParams
from tests.unit.test_batching import abandon, collect, requests


@pytest.fixture(scope="module")
def inside() -> HFBackend:
    return HFBackend.load(None, device="cpu", max_batch_size=8)


@pytest.fixture(scope="module")
def apart() -> Iterator[HFBackend]:
    backend = HFBackend.load(None, device="cpu", max_batch_size=8, engine_process="on")
    yield backend
    asyncio.run(backend.close())


def detail(backend: HFBackend) -> dict[str, Any]:
    return asyncio.run(backend.health()).detail


def test_it_answers_as_the_engine_in_the_worker_token_for_token(
    inside: HFBackend, apart: HFBackend
) -> None:
    assert apart.engine is None  # the weights are not in this process
    engine_pid = detail(apart)["engine_process"]
    assert engine_pid != os.getpid()
    assert apart.model_name == inside.model_name and apart.context_length == inside.context_length
    assert apart.capacity == 8
    batch = requests(inside)

    async def solo() -> list[Any]:
        return [await collect(inside, r) for r in batch]

    async def together() -> list[Any]:
        delays = [0.0, 0.0, 0.0, 0.0, 0.01, 0.02, 0.05, 0.08]  # some join a running batch
        return list(
            await asyncio.gather(
                *(collect(apart, r, d) for r, d in zip(batch, delays, strict=True))
            )
        )

    alone = asyncio.run(solo())
    before = detail(apart)
    joint = asyncio.run(together())
    after = detail(apart)
    steps = after["decode_steps"] - before["decode_steps"]

    assert joint == alone
    assert steps < sum(len(a[1]) for a in alone) / 2, "decode steps were not shared"
    # The engine's own clock, for benchmarks: time in its steps and in its prefills.
    assert after["decode_seconds"] > before["decode_seconds"]
    assert 1 <= after["prefill_passes"] - before["prefill_passes"] <= len(batch)
    assert after["prefill_seconds"] > before["prefill_seconds"]


def test_prompt_logprobs_embeddings_and_structured_output_cross_over(
    inside: HFBackend, apart: HFBackend
) -> None:
    prompt = inside.chat_prompt([{"role": "user", "content": "What is the capital of Norland?"}])
    asked = GenerationRequest(
        prompt, SamplingParams(temperature=0, max_tokens=2, prompt_logprobs=2)
    )

    async def first_chunk(backend: HFBackend) -> Any:
        stream = backend.generate(asked)
        chunk = await anext(stream)
        await stream.aclose()  # type: ignore[attr-defined]
        return chunk.prompt_logprobs

    def rounded(entries: Any) -> Any:
        return [
            None if e is None else {t: (round(v, 4), r, s) for t, (v, r, s) in e.items()}
            for e in entries
        ]

    assert rounded(asyncio.run(first_chunk(apart))) == rounded(asyncio.run(first_chunk(inside)))

    texts = ["a ripe banana", "the river Velmora"]
    near = asyncio.run(apart.embed(texts))
    here = asyncio.run(inside.embed(texts))
    assert [round(x, 5) for row in near for x in row] == [round(x, 5) for row in here for x in row]

    schema = {
        "type": "object",
        "properties": {"city": {"enum": ["Velmora", "Paris", "Rome"]}, "sure": {"type": "boolean"}},
        "required": ["city", "sure"],
        "additionalProperties": False,
    }
    structured = SamplingParams(
        temperature=1.0, seed=3, max_tokens=60, json_schema=json.dumps(schema)
    )
    answer = asyncio.run(collect(apart, GenerationRequest(prompt, structured)))
    assert answer == asyncio.run(collect(inside, GenerationRequest(prompt, structured)))
    assert set(json.loads(answer[0])) == {"city", "sure"}
    nonsense = SamplingParams(json_schema='{"type": "nonsense"}')
    with pytest.raises(InvalidRequestError, match="schema"):  # a worker refuses it here
        apart.check(nonsense)
    with pytest.raises(InvalidRequestError, match="schema"):  # else the engine's error
        asyncio.run(collect(apart, GenerationRequest(prompt, nonsense)))
    assert asyncio.run(collect(apart, asked))[2] == "length"  # and it serves on


def test_a_stopped_stream_leaves_the_batch_and_the_others_finish(
    inside: HFBackend, apart: HFBackend
) -> None:
    batch = requests(inside)[:3]
    alone = [asyncio.run(collect(inside, r)) for r in batch]
    endless = GenerationRequest(  # the rest of the context: 400 tokens and more
        batch[0].prompt, SamplingParams(temperature=0, max_tokens=10_000, ignore_eos=True)
    )
    steps_before = detail(apart)["decode_steps"]

    async def scenario() -> tuple[list[Any], int]:
        results = await asyncio.gather(abandon(apart, endless), *(collect(apart, r) for r in batch))
        for _ in range(3000):  # the engine drops it at its next step (a hang guard)
            figures = (await apart.health()).detail
            if figures["running"] == 0:
                return results, figures["decode_steps"] - steps_before
            await asyncio.sleep(0.01)
        raise AssertionError("the batch never emptied")

    results, steps = asyncio.run(scenario())
    assert results[1:] == alone
    assert steps < 100  # the others' 30 tokens at most, not the endless one's 400


def test_a_model_that_fails_to_load_fails_in_the_worker_with_the_engines_error() -> None:
    with pytest.raises(UnsupportedError, match="unknown dtype 'float8'") as in_worker:
        HFBackend.load(None, device="cpu", dtype="float8")
    with pytest.raises(UnsupportedError) as apart:
        HFBackend.load(None, device="cpu", dtype="float8", engine_process="on")
    assert str(apart.value) == str(in_worker.value)


def test_a_dead_engine_process_fails_its_requests_and_the_health_check() -> None:
    doomed = HFBackend.load(None, device="cpu", engine_process="on")
    pid = detail(doomed)["engine_process"]
    prompt = doomed.chat_prompt([{"role": "user", "content": "Hi"}])
    endless = GenerationRequest(prompt, SamplingParams(max_tokens=100_000, ignore_eos=True))

    async def scenario() -> int:
        received = 0
        async for chunk in doomed.generate(endless):
            received += len(chunk.token_ids)
            if received == 2:
                os.kill(pid, signal.SIGKILL)
        return received

    with pytest.raises(BackendError, match=r"engine process stopped .*restart the worker"):
        asyncio.run(asyncio.wait_for(scenario(), 120))  # a hang fails, not blocks the run
    health = asyncio.run(doomed.health())
    assert not health.ok and "engine process stopped" in health.detail["error"]
    with pytest.raises(BackendError, match="engine process stopped"):
        asyncio.run(collect(doomed, endless))
    asyncio.run(doomed.close())  # nothing left to close: it returns


def test_closing_ends_the_engine_process() -> None:
    closing = HFBackend.load(None, device="cpu", engine_process="on")
    pid = detail(closing)["engine_process"]
    asyncio.run(closing.close())
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    prompt = closing.chat_prompt([{"role": "user", "content": "Hi"}])
    with pytest.raises(BackendError, match="shutting down"):
        asyncio.run(collect(closing, GenerationRequest(prompt, SamplingParams(max_tokens=4))))


def test_the_engine_process_loads_torch_on_its_own_terms() -> None:
    """Its entry module does not import torch: `engine_main` loads it with one OpenMP
    thread first, so no thread team starts beside the engine's (cpu_threads.py)."""
    import subprocess
    import sys

    probe = "import sys, palestra.backends.hf.engine_process; print('torch' in sys.modules)"
    shown = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert shown.stdout.strip() == "False", shown.stderr
