"""Continuous batching in the transformers backend, on the bundled model: requests that
run together return exactly what they return alone (greedy and seeded sampling, stop
strings, stop tokens, different lengths, late arrivals), forward passes are really shared,
the caps hold, and a cancelled request leaves the batch without disturbing the others."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from pydantic import ValidationError

from palestra.backends.hf.backend import HFBackend
from palestra.backends.hf.engine import BatchEngine
from palestra.backends.hf.kv_budget import parse_memory
from palestra.backends.options import HFOptions
from palestra.core.errors import BackendError
from palestra.core.types import GenerationRequest, SamplingParams
from tests.integration.cluster import wait_for
from tests.unit.stream_interval import (
    check_a_time_window_holds_tokens_until_it_has_passed,
    check_groups_tokens_with_the_same_text,
)


@pytest.fixture(scope="module")
def tiny() -> HFBackend:
    return HFBackend.load(None, device="cpu", max_batch_size=8)


QUESTIONS = [
    "Hello! Who are you?",
    "What is the capital of Norland?",
    "What color is a ripe banana?",
    "How many legs does a spider have? Please answer with a number.",
    "What is 3 plus 4?",
    "Tell me about the city of Velmora and the river that runs through it.",
    "What sound does a cow make?",
    "Hi",
]


def requests(backend: HFBackend) -> list[GenerationRequest]:
    """Varied requests: greedy and seeded sampling, a stop string, eos and fixed lengths."""
    variants: list[dict[str, Any]] = [
        {"temperature": 0, "max_tokens": 24},
        {"temperature": 0, "max_tokens": 16, "ignore_eos": True},
        {"temperature": 0.8, "seed": 7, "max_tokens": 20},
        {"temperature": 0, "max_tokens": 30, "stop": ("the",)},
        {"temperature": 0, "max_tokens": 5},
        {"temperature": 1.0, "top_p": 0.9, "seed": 1, "max_tokens": 28, "ignore_eos": True},
        {"temperature": 0, "max_tokens": 24, "repetition_penalty": 1.3},
        {"temperature": 0, "max_tokens": 12, "logprobs": True, "top_logprobs": 2},
    ]
    return [
        GenerationRequest(
            backend.chat_prompt([{"role": "user", "content": q}]), SamplingParams(**v)
        )
        for q, v in zip(QUESTIONS, variants, strict=True)
    ]


async def collect(backend: HFBackend, request: GenerationRequest, delay: float = 0.0) -> Any:
    await asyncio.sleep(delay)
    chunks = [chunk async for chunk in backend.generate(request)]
    ids = [t for c in chunks for t in c.token_ids]
    logprobs = [(lp.token_id, round(lp.logprob, 4)) for c in chunks for lp in c.logprobs]
    return "".join(c.text for c in chunks), ids, chunks[-1].finish_reason, logprobs


async def abandon(backend: HFBackend, request: GenerationRequest, after: int = 3) -> int:
    """Read `request`'s stream until `after` tokens came, then close it."""
    stream = backend.generate(request)
    received = 0
    async for chunk in stream:
        received += len(chunk.token_ids)
        if received >= after:
            break
    await stream.aclose()  # type: ignore[attr-defined]
    return received


def together(backend: HFBackend, request: GenerationRequest, copies: int) -> list[Any]:
    """`copies` identical requests submitted in one event-loop turn."""

    async def run() -> list[Any]:
        return list(await asyncio.gather(*(collect(backend, request) for _ in range(copies))))

    return asyncio.run(run())


def test_batched_requests_match_solo_runs_token_for_token(tiny: HFBackend) -> None:
    batch = requests(tiny)
    engine = tiny.engine
    assert engine is not None

    async def solo() -> list[Any]:
        return [await collect(tiny, r) for r in batch]

    async def together() -> list[Any]:
        # Half arrive at once, the rest while the batch is already decoding.
        delays = [0.0, 0.0, 0.0, 0.0, 0.01, 0.02, 0.05, 0.08]
        return list(
            await asyncio.gather(*(collect(tiny, r, d) for r, d in zip(batch, delays, strict=True)))
        )

    alone = asyncio.run(solo())
    steps_before = engine.steps
    joint = asyncio.run(together())
    steps = engine.steps - steps_before

    assert joint == alone
    assert {a[2] for a in alone} == {"stop", "length"}  # both ways of ending were exercised
    generated = sum(len(a[1]) for a in alone)
    assert steps < generated / 2, "decode steps were not shared"
    assert engine.peak_batch >= 4


def test_batch_size_cap_holds_and_everyone_finishes() -> None:
    capped = HFBackend.load(None, device="cpu", max_batch_size=2)
    engine = capped.engine
    assert engine is not None
    prompt = capped.chat_prompt([{"role": "user", "content": "What color is the sky?"}])
    request = GenerationRequest(
        prompt, SamplingParams(temperature=0, max_tokens=8, ignore_eos=True)
    )

    results = together(capped, request, 5)
    assert all(len(r[1]) == 8 for r in results)
    assert len({tuple(r[1]) for r in results}) == 1
    assert engine.peak_batch == 2


def test_cached_token_cap_admits_one_long_request_at_a_time() -> None:
    capped = HFBackend.load(None, device="cpu", max_batch_size=8, max_cached_tokens=60)
    engine = capped.engine
    assert engine is not None
    prompt = capped.chat_prompt([{"role": "user", "content": "Hi"}])
    request = GenerationRequest(
        prompt, SamplingParams(temperature=0, max_tokens=30, ignore_eos=True)
    )

    assert all(len(r[1]) == 30 for r in together(capped, request, 3))
    assert engine.peak_batch == 1  # two would need more than 60 slots


def test_the_memory_budget_sizes_the_batch_and_the_prefix_cache() -> None:
    # The bundled model caches 4 layers x (key + value) x 256 floats = 8 KiB per token, so
    # 1 MiB holds 128 slots: 96 for running sequences (3/4), 32 for the prefix cache.
    budgeted = HFBackend.load(None, device="cpu", kv_cache_memory="1MiB")
    engine = budgeted.engine
    assert engine is not None
    assert (engine.max_cached_tokens, engine.prefix_cache.max_tokens) == (96, 32)
    prompt = budgeted.chat_prompt([{"role": "user", "content": "Hi"}])
    request = GenerationRequest(
        prompt, SamplingParams(temperature=0, max_tokens=30, ignore_eos=True)
    )
    reserved = len(budgeted.tokenize(prompt)) + 30
    assert 2 * reserved <= 96 < 3 * reserved  # two requests fit, three do not

    assert all(len(r[1]) == 30 for r in together(budgeted, request, 4))
    assert engine.peak_batch == 2


def test_memory_sizes_are_read_as_people_write_them() -> None:
    assert parse_memory("auto") is None
    assert parse_memory("4GiB") == 4 * 2**30
    assert parse_memory("512MB") == 512 * 10**6
    assert parse_memory("1.5g") == 1_500_000_000
    assert parse_memory("1000") == 1000
    with pytest.raises(ValueError, match="not a size"):
        parse_memory("lots")
    with pytest.raises(ValidationError, match="not a size"):
        HFOptions(kv_cache_memory="4 parsecs")


def test_identical_prompts_admitted_together_share_one_prefill(tiny: HFBackend) -> None:
    engine = tiny.engine
    assert engine is not None
    prompt = tiny.chat_prompt([{"role": "user", "content": "What is the capital of Norland?"}])
    params = SamplingParams(temperature=0.9, seed=None, max_tokens=6, ignore_eos=True)

    def prompts_run() -> int:  # from scratch, or resumed from a cached prefix
        return engine.fresh_prefills + engine.prefix_cache.hits

    before = prompts_run()
    # Submitted together, they reach the engine together (or while it prefills the first).
    results = together(tiny, GenerationRequest(prompt, params), 4)
    assert all(len(r[1]) == 6 for r in results)
    assert 1 <= prompts_run() - before < 4


def test_prefills_project_only_the_last_position_onto_the_vocabulary(tiny: HFBackend) -> None:
    import torch

    from palestra.backends.hf.kv_batch import KVBatch

    model = tiny.model
    shapes: list[tuple[int, ...]] = []
    hook = model.register_forward_hook(lambda _m, _a, out: shapes.append(tuple(out.logits.shape)))
    prompts = [[5, 9, 31, 7, 12, 40], [8, 3, 77]]
    try:
        with torch.inference_mode():
            batch, last = KVBatch.prefill(model, prompts, "cpu")
            past = batch.row_layers(0, 4)
            _, resumed = KVBatch.prefill_after(model, prompts[0], 4, past, "cpu")
    finally:
        hook.remove()
    vocab = model.config.vocab_size
    assert shapes == [(2, 1, vocab), (1, 1, vocab)]  # not (2, 6, vocab), (1, 2, vocab)
    with torch.inference_mode():  # the same logits as projecting every position
        for row, prompt in enumerate(prompts):
            full = model(input_ids=torch.tensor([prompt])).logits[0, -1]
            assert torch.allclose(last[row], full, atol=1e-4)
        assert torch.allclose(resumed[0], last[0], atol=1e-4)


def failing_retire(engine: BatchEngine, times: int) -> None:
    """The engine's `_retire` (outside the step's own error handling) fails `times` times."""
    retire, failures = engine._retire, [times]

    def retire_without_memory() -> None:
        if failures[0] > 0:
            failures[0] -= 1
            raise MemoryError("no memory left for the prefix cache")
        retire()

    engine._retire = retire_without_memory  # type: ignore[method-assign]


def answer(backend: HFBackend, question: str, **sampling: Any) -> str:
    """Greedy, 8 tokens unless told; bounded: a dead engine thread answers never."""
    prompt = backend.chat_prompt([{"role": "user", "content": question}])
    request = GenerationRequest(
        prompt, SamplingParams(**{"temperature": 0, "max_tokens": 8} | sampling)
    )

    async def collect() -> list[Any]:
        return [chunk async for chunk in backend.generate(request)]

    return "".join(chunk.text for chunk in asyncio.run(asyncio.wait_for(collect(), 30)))


def test_an_engine_loop_that_fails_fails_its_requests_and_starts_again() -> None:
    backend = HFBackend.load(None, device="cpu")
    engine = backend.engine
    assert engine is not None
    before = answer(backend, "What is 3 plus 4?")
    # The answer's end is delivered before its row is retired: the failing retire must
    # catch the next request's, not that one's.
    wait_for(lambda: engine.running == 0, 10, "the answer's row retired")
    failing_retire(engine, times=1)
    with pytest.raises(BackendError, match="engine stopped: MemoryError: no memory left"):
        answer(backend, "What is 3 plus 4?", max_tokens=200, ignore_eos=True)
    wait_for(lambda: engine.restarts == 1, 10, "the loop started again")
    assert engine.prefix_cache.tokens == 0  # forgotten with the batch
    assert answer(backend, "What is 3 plus 4?") == before
    assert engine.peak_batch == 1  # the failed request left the batch; it decodes no more
    health = asyncio.run(backend.health())
    assert health.ok and health.detail["loop_restarts"] == 1


def test_an_engine_loop_that_keeps_failing_closes_its_model() -> None:
    backend = HFBackend.load(None, device="cpu")
    engine = backend.engine
    assert engine is not None
    failing_retire(engine, times=1000)
    for _ in range(3):  # core/restarts.py: three failures in five minutes
        with pytest.raises(BackendError, match="engine stopped: MemoryError: no memory left"):
            answer(backend, "What is 3 plus 4?")
    with pytest.raises(BackendError, match="engine is closed"):  # at once, not a hang
        answer(backend, "What is 3 plus 4?")
    health = asyncio.run(backend.health())
    assert not health.ok and "MemoryError" in health.detail["error"]
    assert engine.restarts == 2


def test_a_cancelled_request_leaves_the_batch_and_the_others_finish(tiny: HFBackend) -> None:
    engine = tiny.engine
    assert engine is not None
    batch = requests(tiny)[:3]

    async def scenario() -> tuple[list[Any], int]:
        alone = [await collect(tiny, r) for r in batch]
        long_one = GenerationRequest(
            batch[0].prompt, SamplingParams(temperature=0, max_tokens=200, ignore_eos=True)
        )

        results = await asyncio.gather(abandon(tiny, long_one), *(collect(tiny, r) for r in batch))
        assert results[1:] == alone
        for _ in range(100):  # the engine drops it at its next step
            if engine.running == 0:
                break
            await asyncio.sleep(0.01)
        return alone, engine.running

    _, running = asyncio.run(scenario())
    assert running == 0


def test_multi_turn_chat_reuses_the_cached_history_and_answers_the_same() -> None:
    cached = HFBackend.load(None, device="cpu")
    plain = HFBackend.load(None, device="cpu", prefix_cache_tokens=0)
    assert cached.engine is not None and plain.engine is not None
    cache = cached.engine.prefix_cache
    params = SamplingParams(temperature=0, max_tokens=40)

    async def conversation(backend: HFBackend) -> list[str]:
        history: list[dict[str, str]] = []
        replies = []
        for question in ["Hello! Who are you?", "What is the capital of Norland?", "Thanks!"]:
            history.append({"role": "user", "content": question})
            reply = (
                await collect(backend, GenerationRequest(backend.chat_prompt(history), params))
            )[0]
            history.append({"role": "assistant", "content": reply})
            replies.append(reply)
        return replies

    with_cache = asyncio.run(conversation(cached))
    assert with_cache == asyncio.run(conversation(plain))
    assert cache.hits >= 2  # turns 2 and 3 started from the previous turn's key/values
    second_prompt_tokens = cached.count_tokens(
        cached.chat_prompt(
            [
                {"role": "user", "content": "Hello! Who are you?"},
                {"role": "assistant", "content": with_cache[0]},
            ]
        )
    )
    assert cache.reused_tokens >= second_prompt_tokens - 2
    assert plain.engine.prefix_cache.hits == 0


def test_a_stream_interval_hands_on_tokens_in_groups_with_the_same_text(tiny: HFBackend) -> None:
    check_groups_tokens_with_the_same_text(tiny)


def test_a_time_window_holds_tokens_until_it_has_passed(tiny: HFBackend) -> None:
    check_a_time_window_holds_tokens_until_it_has_passed(tiny)


def test_a_first_token_goes_out_before_the_batch_decodes_again(
    tiny: HFBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first token, sampled from a newcomer's prefill, is handed to its consumer before
    the decode step that runs in the same engine turn (time to first token: one prefill,
    not a prefill and a step of the running batch). Requests arrive alone and while a
    batch is decoding."""
    undelivered: list[int] = []  # at the start of each decode step: chunks still held
    decode = BatchEngine._decode

    def watched(engine: BatchEngine) -> None:
        undelivered.append(sum(1 for entry in engine._running if entry.outbox))
        decode(engine)

    monkeypatch.setattr(BatchEngine, "_decode", watched)
    long = GenerationRequest(
        tiny.chat_prompt([{"role": "user", "content": "Hi"}]),
        SamplingParams(temperature=0, max_tokens=40, ignore_eos=True),
    )

    async def run() -> list[Any]:
        late = [
            collect(tiny, request, delay)
            for request, delay in zip(requests(tiny)[:3], (0.02, 0.04, 0.06), strict=True)
        ]
        return list(await asyncio.gather(collect(tiny, long), *late))

    results = asyncio.run(run())
    assert len(results[0][1]) == 40 and all(r[1] for r in results)
    assert len(undelivered) >= 39 and max(undelivered) == 0, undelivered[:5]  # token 1: prefill
