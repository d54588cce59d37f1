"""The transformers engine in a process of its own (`--engine-process`), on the bundled
model: it answers exactly as the engine in the worker does (batched, sampled, stopped,
with logprobs, prompt logprobs, embeddings and structured output), a stopped stream
leaves its batch, a failed load fails in the worker with the engine's own error, and a
dead engine process fails its open requests instead of hanging, while a new one loads the
model for the requests that come next (unless engines keep dying, or the model is gone)."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from palestra.backends.hf.backend import HFBackend
from palestra.core import restarts
from palestra.core.errors import BackendError, InvalidRequestError, UnsupportedError
from palestra.core.types import GenerationRequest, SamplingParams
from palestra.models.inspect import resolve_model_path
from tests.integration.cluster import children
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


async def kill_midway(backend: HFBackend) -> None:
    """Kill the engine process (as the out-of-memory killer would) while a request streams."""
    pid = (await backend.health()).detail["engine_process"]
    prompt = backend.chat_prompt([{"role": "user", "content": "Hi"}])
    endless = GenerationRequest(prompt, SamplingParams(max_tokens=100_000, ignore_eos=True))
    received, killed = 0, False
    async for chunk in backend.generate(endless):
        received += len(chunk.token_ids)
        if received >= 2 and not killed:  # a chunk may carry several tokens (held text)
            os.kill(pid, signal.SIGKILL)
            killed = True
    raise AssertionError(f"the stream ended after {received} tokens, without an error")


async def until_served(backend: HFBackend) -> dict[str, Any]:
    """The health once it is ok again (a new engine process has loaded the model)."""
    async with asyncio.timeout(120):  # a hang fails, not blocks the run
        while not (health := await backend.health()).ok:
            await asyncio.sleep(0.1)
    return health.detail


def engine_processes() -> set[int]:
    """This process's children that run an engine."""
    return children(os.getpid(), b"engine_main")


def test_a_dead_engine_process_fails_its_requests_and_a_new_one_serves_the_next() -> None:
    others = engine_processes()  # the module's
    backend = HFBackend.load(None, device="cpu", engine_process="on")
    first = detail(backend)["engine_process"]
    prompt = backend.chat_prompt([{"role": "user", "content": "Name a colour."}])
    greedy = SamplingParams(temperature=0, max_tokens=12, prompt_logprobs=1)  # comparable
    asked = GenerationRequest(prompt, greedy)
    before = asyncio.run(collect(backend, asked))

    async def scenario() -> tuple[Any, dict[str, Any]]:
        stopped = r"engine process stopped \(killed by SIGKILL\); a new one is loading the model"
        with pytest.raises(BackendError, match=stopped):
            await kill_midway(backend)
        health = await backend.health()  # at once: the new engine is still loading
        assert not health.ok and re.search(stopped, health.detail["error"])
        # Made meanwhile (a call for the prompt's logprobs, then the generation), it
        # waits for the new engine instead of failing.
        answer = await asyncio.wait_for(collect(backend, asked), 120)
        return answer, await until_served(backend)

    after, health = asyncio.run(scenario())
    assert after == before
    assert health["engine_restarts"] == 1 and health["engine_process"] != first
    with pytest.raises(ProcessLookupError):
        os.kill(first, 0)  # the dead one was reaped
    assert engine_processes() - others == {health["engine_process"]}
    asyncio.run(backend.close())
    assert not engine_processes() - others


def test_an_engine_process_that_keeps_dying_is_not_started_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(restarts, "LIMIT", 2)
    others = engine_processes()
    backend = HFBackend.load(None, device="cpu", engine_process="on")
    prompt = backend.chat_prompt([{"role": "user", "content": "Hi"}])

    async def scenario() -> None:
        with pytest.raises(BackendError, match="a new one is loading"):
            await kill_midway(backend)
        await until_served(backend)
        with pytest.raises(BackendError, match=r"2 times in 5 minutes; restart the worker"):
            await kill_midway(backend)

    asyncio.run(scenario())
    health = asyncio.run(backend.health())
    assert not health.ok and "restart the worker" in health.detail["error"]
    with pytest.raises(BackendError, match="restart the worker"):
        asyncio.run(collect(backend, GenerationRequest(prompt, SamplingParams(max_tokens=4))))
    assert not engine_processes() - others
    asyncio.run(backend.close())  # nothing left to close: it returns


def test_a_new_engine_that_cannot_load_the_model_fails_what_waited_for_it(
    tmp_path: Path,
) -> None:
    folder = Path(shutil.copytree(resolve_model_path(None), tmp_path / "model"))
    backend = HFBackend.load(str(folder), device="cpu", engine_process="on")
    prompt = backend.chat_prompt([{"role": "user", "content": "Hi"}])
    shutil.rmtree(folder)  # the model's files went away while it served

    async def scenario() -> None:
        with pytest.raises(BackendError, match="a new one is loading"):
            await kill_midway(backend)
        waiting = GenerationRequest(prompt, SamplingParams(max_tokens=4))
        with pytest.raises(BackendError, match=r"and it failed: .*restart the worker"):
            await asyncio.wait_for(collect(backend, waiting), 120)

    asyncio.run(scenario())
    health = asyncio.run(backend.health())
    assert not health.ok and "and it failed" in health.detail["error"]
    asyncio.run(backend.close())


def test_closing_while_a_new_engine_loads_ends_it_too() -> None:
    others = engine_processes()
    backend = HFBackend.load(None, device="cpu", engine_process="on")

    async def scenario() -> None:
        with pytest.raises(BackendError, match="a new one is loading"):
            await kill_midway(backend)
        await backend.close()

    asyncio.run(scenario())
    assert not engine_processes() - others  # (an earlier test's may have exited since)


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
