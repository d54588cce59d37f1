"""The llama.cpp backend and the GGUF converter, on the bundled model converted for real:
the GGUF tokenises and answers exactly like the transformers model, quantised files load,
and the backend streams, stops, samples reproducibly, embeds and serves requests in
parallel."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import pytest

from palestra.core.errors import BackendError, InvalidRequestError, UnsupportedError
from palestra.core.types import GenerationRequest, SamplingParams
from palestra.models.inspect import bundled_model_path
from tests.integration.cluster import wait_for
from tests.unit.stream_interval import (
    check_a_time_window_holds_tokens_until_it_has_passed,
    check_groups_tokens_with_the_same_text,
)

pytest.importorskip("llama_cpp")
pytest.importorskip("gguf")

from palestra.backends.hf.backend import HFBackend
from palestra.backends.llamacpp.backend import LlamaCppBackend
from palestra.backends.llamacpp.convert import convert_to_gguf
from palestra.backends.options import LlamaCppOptions


@pytest.fixture(scope="module")
def gguf_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("gguf") / "tiny-f32.gguf"
    result = convert_to_gguf(bundled_model_path(), out, "f32")
    assert result.tensors == 38 and out.stat().st_size > 10_000_000
    return out


@pytest.fixture(scope="module")
def gguf(gguf_file: Path) -> LlamaCppBackend:
    return LlamaCppBackend.load(str(gguf_file), parallel=2)


@pytest.fixture(scope="module")
def hf() -> HFBackend:
    return HFBackend.load(None, device="cpu")


def ask(backend: Any, question: str, **sampling: Any) -> tuple[str, Any, list[Any]]:
    async def collect() -> list[Any]:
        prompt = backend.chat_prompt([{"role": "user", "content": question}])
        request = GenerationRequest(prompt, SamplingParams(**sampling))
        return [chunk async for chunk in backend.generate(request)]

    chunks = asyncio.run(collect())
    return "".join(c.text for c in chunks), chunks[-1], chunks


QUESTIONS = [
    "Hello! Who are you?",
    "What is 3 plus 4?",
    "What color is a ripe banana?",
    "What sound does a cow make?",
]


def test_gguf_tokenises_like_the_transformers_tokenizer(
    gguf: LlamaCppBackend, hf: HFBackend
) -> None:
    texts = [
        "Hello! Who are you?",
        "  spaces,\n\nnewlines\tand tabs; numbers 12345 and naïve café",
        "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n",
    ]
    for text in texts:
        assert (
            gguf.tokenizer.encode(text) == hf.tokenizer(text, add_special_tokens=False)["input_ids"]
        )
    assert gguf.template.name == "tokenizer"  # the chat template travelled inside the file
    assert gguf.model_name == "tiny-chat" and gguf.context_length == 512


def test_greedy_answers_match_the_transformers_model(gguf: LlamaCppBackend, hf: HFBackend) -> None:
    for question in QUESTIONS:
        text, last, _ = ask(gguf, question, temperature=0, max_tokens=48)
        reference, reference_last, _ = ask(hf, question, temperature=0, max_tokens=48)
        assert text == reference
        assert last.finish_reason == reference_last.finish_reason == "stop"
        assert last.usage == reference_last.usage


def test_streams_deltas_stops_and_lengths(gguf: LlamaCppBackend) -> None:
    full, last, chunks = ask(gguf, QUESTIONS[0], temperature=0, max_tokens=10, ignore_eos=True)
    assert last.finish_reason == "length" and last.usage.completion_tokens == 10
    ids = [t for c in chunks for t in c.token_ids]  # deltas (merged when the reader lags)
    assert len(ids) == 10 and gguf.detokenize(ids) == full
    stop = "Palestra"
    assert stop in full
    stopped, last, _ = ask(gguf, QUESTIONS[0], temperature=0, max_tokens=10, stop=(stop,))
    assert stopped == full[: full.index(stop)] and last.finish_reason == "stop"


def test_seeded_sampling_repeats(gguf: LlamaCppBackend) -> None:
    runs = [
        ask(gguf, "Tell me a word.", temperature=1.0, seed=5, max_tokens=12)[0] for _ in range(2)
    ]
    assert runs[0] == runs[1]


def test_parallel_requests_each_get_their_solo_answer(gguf: LlamaCppBackend) -> None:
    solo = [ask(gguf, q, temperature=0, max_tokens=32)[0] for q in QUESTIONS]

    async def together() -> list[str]:
        async def one(question: str) -> str:
            prompt = gguf.chat_prompt([{"role": "user", "content": question}])
            request = GenerationRequest(prompt, SamplingParams(temperature=0, max_tokens=32))
            return "".join([c.text async for c in gguf.generate(request)])

        return list(await asyncio.gather(*(one(q) for q in QUESTIONS * 2)))

    assert asyncio.run(together()) == solo * 2


def test_penalties_apply_at_temperature_0_as_in_transformers(
    gguf: LlamaCppBackend, hf: HFBackend
) -> None:
    cases = [  # each changes the answer (the others leave this model's answers alone)
        ("What is the capital of Norland?", {"repetition_penalty": 8.0}),
        ("How many legs does a spider have? Please answer with a number.",
         {"frequency_penalty": -2.0}),
        ("How many legs does a spider have? Please answer with a number.",
         {"presence_penalty": -2.0}),
    ]  # fmt: skip
    for question, penalties in cases:
        plain = ask(gguf, question, temperature=0, max_tokens=60)[0]
        text, last, _ = ask(gguf, question, temperature=0, max_tokens=60, **penalties)
        reference, reference_last, _ = ask(hf, question, temperature=0, max_tokens=60, **penalties)
        assert text == reference and last.usage == reference_last.usage
        assert text != plain, penalties
    question = cases[0][0]
    sampled = ask(gguf, question, temperature=0.8, seed=3, max_tokens=12, repetition_penalty=1.2)
    assert sampled[1].usage.completion_tokens >= 1


def test_a_request_whose_sampler_fails_fails_alone(
    gguf: LlamaCppBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = gguf._engine

    def refuse(sequence: Any) -> None:
        raise ValueError("this sampler cannot be built")

    async def answer(question: str) -> str:  # bounded: a dead engine thread answers never
        prompt = gguf.chat_prompt([{"role": "user", "content": question}])
        request = GenerationRequest(prompt, SamplingParams(temperature=0, max_tokens=24))

        async def collect() -> str:
            return "".join([c.text async for c in gguf.generate(request)])

        return await asyncio.wait_for(collect(), 30)

    monkeypatch.setattr(engine, "_sampler", refuse)
    with pytest.raises(BackendError, match="cannot be built") as failed:
        asyncio.run(answer(QUESTIONS[1]))
    assert failed.value.http_status == 500  # the server's failure, not the request's
    monkeypatch.undo()
    assert "7" in asyncio.run(answer(QUESTIONS[1]))  # the engine thread lives on
    deadline = time.monotonic() + 10  # the engine thread frees the slot after the last chunk
    while engine.running and time.monotonic() < deadline:
        time.sleep(0.01)
    assert engine.running == 0  # the failed request never held a slot
    assert asyncio.run(gguf.health()).ok  # one request's failure is not the model's


def generate_all(backend: LlamaCppBackend, *requests: GenerationRequest) -> list[Any]:
    """Each request's chunks, or the error it ended with; bounded: a dead engine thread
    answers never."""

    async def collect(request: GenerationRequest) -> list[Any]:
        return [chunk async for chunk in backend.generate(request)]

    async def scenario() -> list[Any]:
        both = asyncio.gather(*(collect(r) for r in requests), return_exceptions=True)
        return list(await asyncio.wait_for(both, 30))

    return asyncio.run(scenario())


def test_a_failed_engine_loop_fails_the_request_in_it_and_the_waiting_one_goes_on(
    gguf_file: Path, gguf: LlamaCppBackend
) -> None:
    single = LlamaCppBackend.load(str(gguf_file), parallel=1)
    engine = single._engine
    drop, failed = engine._drop_cancelled, []

    def drop_then_fail_once() -> None:  # outside the step's own error handling
        drop()
        if engine.running and not failed:
            failed.append(True)
            raise RuntimeError("the slot table is corrupt")

    engine._drop_cancelled = drop_then_fail_once  # type: ignore[method-assign]
    question = "What is 3 plus 4?"
    prompt = single.chat_prompt([{"role": "user", "content": question}])
    running = GenerationRequest(prompt, SamplingParams(temperature=0, max_tokens=8))
    waiting = GenerationRequest(prompt, SamplingParams(temperature=0, max_tokens=32))
    first, second = generate_all(single, running, waiting)
    assert isinstance(first, BackendError) and "slot table is corrupt" in str(first)
    text = "".join(chunk.text for chunk in second)  # from an emptied context, as if alone
    assert text == ask(gguf, question, temperature=0, max_tokens=32)[0]
    health = asyncio.run(single.health())
    assert health.ok and health.detail["loop_restarts"] == 1


def test_an_engine_loop_that_keeps_failing_closes_its_model(gguf_file: Path) -> None:
    single = LlamaCppBackend.load(str(gguf_file), parallel=1)
    engine = single._engine
    release = engine._release

    def release_then_fail(slot: Any) -> None:  # outside the step's own error handling
        release(slot)
        raise RuntimeError("the slot table is corrupt")

    engine._release = release_then_fail  # type: ignore[method-assign]
    prompt = single.chat_prompt([{"role": "user", "content": "What is 3 plus 4?"}])
    short = GenerationRequest(prompt, SamplingParams(temperature=0, max_tokens=2))
    for _ in range(3):  # each is answered before its slot's release fails the loop
        (chunks,) = generate_all(single, short)
        assert chunks[-1].usage.completion_tokens == 2
    # The third failure in five minutes (core/restarts.py) closes it.
    wait_for(lambda: engine.failure is not None, 10, "the engine closed")
    (refused,) = generate_all(single, short)
    assert isinstance(refused, BackendError) and "engine is closed" in str(refused)
    health = asyncio.run(single.health())
    assert not health.ok and "RuntimeError" in health.detail["error"]
    assert health.detail["loop_restarts"] == 2


def test_a_stream_interval_groups_tokens_with_the_same_text(gguf: LlamaCppBackend) -> None:
    check_groups_tokens_with_the_same_text(gguf)


def test_a_time_window_holds_tokens_until_it_has_passed(gguf: LlamaCppBackend) -> None:
    check_a_time_window_holds_tokens_until_it_has_passed(gguf)


def test_a_batch_shares_each_decode_call_and_answers_as_alone(gguf_file: Path) -> None:
    batched = LlamaCppBackend.load(str(gguf_file), parallel=4)
    engine = batched._engine
    params = {"temperature": 0, "max_tokens": 24, "ignore_eos": True}
    solo = [ask(batched, q, **params)[0] for q in QUESTIONS]
    solo_steps = engine.steps
    assert solo_steps >= 4 * 24  # alone: one decode call per token (prefill included)

    async def together() -> list[str]:
        async def one(question: str) -> str:
            prompt = batched.chat_prompt([{"role": "user", "content": question}])
            request = GenerationRequest(prompt, SamplingParams(**params))
            return "".join([c.text async for c in batched.generate(request)])

        return list(await asyncio.gather(*(one(q) for q in QUESTIONS)))

    assert asyncio.run(together()) == solo
    assert engine.peak_batch == 4
    assert engine.steps - solo_steps <= 24 + 4  # about one call per token for all four
    asyncio.run(batched.close())


def test_the_next_turn_reuses_the_cached_conversation(gguf: LlamaCppBackend) -> None:
    engine = gguf._engine
    first = [{"role": "user", "content": "What is the capital of Norland?"}]
    answer = ask(gguf, first[0]["content"], temperature=0, max_tokens=32)[0]
    before = engine.reused_tokens
    turns = [*first, {"role": "assistant", "content": answer},
             {"role": "user", "content": "And what is 3 plus 4?"}]  # fmt: skip

    async def second_turn() -> str:
        request = GenerationRequest(gguf.chat_prompt(turns), SamplingParams(temperature=0))
        return "".join([c.text async for c in gguf.generate(request)])

    assert "7" in asyncio.run(second_turn())
    first_prompt = len(gguf.tokenize(gguf.chat_prompt(first)))
    assert engine.reused_tokens - before >= first_prompt  # only the new turn is prefilled


def test_json_schema_output_and_refused_logprobs(gguf: LlamaCppBackend) -> None:
    schema = json.dumps(
        {
            "type": "object",
            "properties": {"answer": {"enum": ["yes", "no"]}},
            "required": ["answer"],
            "additionalProperties": False,
        }
    )
    text, _, _ = ask(gguf, "Is the sky blue?", temperature=0, max_tokens=40, json_schema=schema)
    assert json.loads(text)["answer"] in ("yes", "no")
    with pytest.raises(UnsupportedError, match="logprobs"):
        gguf.check(SamplingParams(logprobs=True))
    with pytest.raises(UnsupportedError, match="prompt_logprobs") as refused:
        gguf.check(SamplingParams(prompt_logprobs=1))
    assert refused.value.param == "prompt_logprobs"


def test_embeddings_are_unit_vectors(gguf: LlamaCppBackend) -> None:
    vectors = asyncio.run(gguf.embed(["a cow says moo", "snow is white"]))
    assert len(vectors) == 2 and len(vectors[0]) == 256
    assert sum(x * x for x in vectors[0]) == pytest.approx(1.0, abs=1e-4)
    assert vectors[0] != vectors[1]
    assert asyncio.run(gguf.embed(["a cow says moo"]))[0] == pytest.approx(vectors[0], abs=1e-5)


def test_quantised_file_loads_and_answers(tmp_path: Path) -> None:
    from llama_cpp import llama_cpp as bindings

    defaults = bindings.llama_model_default_params
    result = convert_to_gguf(bundled_model_path(), tmp_path / "tiny-q8.gguf", "q8_0")
    assert result.size_bytes < 6_000_000  # vs 14.8 MB in f32
    # auto: on a CPU with AMX the repacked q8_0 kernels would crash this process
    quantised = LlamaCppBackend.load(str(result.path), parallel=1)
    text, last, _ = ask(quantised, "What is 3 plus 4?", temperature=0, max_tokens=24)
    assert "7" in text and last.finish_reason == "stop"
    unpacked = LlamaCppBackend.load(str(result.path), parallel=1, repack_weights="off")
    assert ask(unpacked, "What is 3 plus 4?", temperature=0, max_tokens=24)[0] == text
    assert bindings.llama_model_default_params is defaults  # the load's switch is undone


def test_weights_are_repacked_except_where_it_crashes() -> None:
    assert not LlamaCppOptions().repacks(frozenset({"avx512f", "amx_int8", "amx_tile"}))
    assert LlamaCppOptions().repacks(frozenset({"avx2", "fma"}))
    assert LlamaCppOptions(repack_weights="on").repacks(frozenset({"amx_int8"}))
    assert not LlamaCppOptions(repack_weights="off").repacks(frozenset())


def test_conversion_and_loading_errors_are_clear(tmp_path: Path, random_llama_dir: Path) -> None:
    with pytest.raises(InvalidRequestError, match=r"no config\.json"):
        convert_to_gguf(tmp_path)
    with pytest.raises(InvalidRequestError, match="unknown --outtype"):
        convert_to_gguf(random_llama_dir, tmp_path / "x.gguf", "q3_weird")
    bert = tmp_path / "bert"
    bert.mkdir()
    (bert / "config.json").write_text(json.dumps({"architectures": ["BertModel"]}))
    with pytest.raises(UnsupportedError, match="convert_hf_to_gguf"):
        convert_to_gguf(bert)
    with pytest.raises(InvalidRequestError, match="does not exist"):
        LlamaCppBackend.load(str(tmp_path / "missing.gguf"))
    (tmp_path / "broken.gguf").write_bytes(b"not a gguf file")
    with pytest.raises(InvalidRequestError, match="cannot load"):
        LlamaCppBackend.load(str(tmp_path / "broken.gguf"))


def test_a_request_that_leaves_frees_its_slot_for_the_next(gguf_file: Path) -> None:
    single = LlamaCppBackend.load(str(gguf_file), parallel=1)
    engine = single._engine
    long = SamplingParams(temperature=0, max_tokens=200, ignore_eos=True)

    async def scenario() -> list[Any]:
        prompt = single.chat_prompt([{"role": "user", "content": "Hello! Who are you?"}])
        stream = single.generate(GenerationRequest(prompt, long))
        await anext(stream)  # the client reads one chunk, then leaves
        await stream.aclose()  # type: ignore[attr-defined]
        return [c async for c in single.generate(GenerationRequest(prompt, long))]

    reply = asyncio.run(scenario())
    assert reply[-1].usage.completion_tokens == 200
    # Had the first request kept its only slot for its 200 tokens, the second would have
    # waited for them: 400 decode calls or more.
    assert engine.steps < 300
    deadline = time.monotonic() + 10  # the engine thread frees the slot after the last chunk
    while engine.running and time.monotonic() < deadline:
        time.sleep(0.01)
    assert engine.running == 0
    asyncio.run(single.close())
