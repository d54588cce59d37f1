"""The transformers backend on a small random Llama: streaming, stop strings and stop
tokens, length limits, context truncation, logprobs, seeds, embeddings, PEFT adapters and
an encoder-decoder model."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

import pytest

from palestra.backends.hf.backend import HFBackend
from palestra.backends.hf.runner import LocalRunner
from palestra.core.errors import InvalidRequestError, UnsupportedError
from palestra.core.types import (
    GenerationChunk,
    GenerationRequest,
    Message,
    Pacing,
    SamplingParams,
    Usage,
)


@pytest.fixture(scope="module")
def backend(random_llama_dir: Path) -> HFBackend:
    return HFBackend.load(str(random_llama_dir), device="cpu")


def run(backend: Any, prompt: str, **sampling: Any) -> list[GenerationChunk]:
    async def collect() -> list[GenerationChunk]:
        request = GenerationRequest(prompt, SamplingParams(**sampling))
        return [chunk async for chunk in backend.generate(request)]

    return asyncio.run(collect())


def text_of(chunks: list[GenerationChunk]) -> str:
    return "".join(c.text for c in chunks)


def test_streams_deltas_and_ends_with_usage(backend: HFBackend) -> None:
    chunks = run(backend, "The capital of France", temperature=0, max_tokens=12, ignore_eos=True)
    final = chunks[-1]
    assert final.finish_reason == "length" and final.usage is not None
    assert final.usage.completion_tokens == 12
    assert final.usage.prompt_tokens == backend.count_tokens("The capital of France")
    assert sum(len(c.token_ids) for c in chunks) == 12
    assert all(c.finish_reason is None for c in chunks[:-1])


def test_greedy_is_deterministic_and_seed_repeats_sampling(backend: HFBackend) -> None:
    greedy = [text_of(run(backend, "A cow says", temperature=0, max_tokens=10)) for _ in range(2)]
    assert greedy[0] == greedy[1]
    sampled = [
        text_of(run(backend, "A cow says", temperature=1.0, seed=3, max_tokens=10, ignore_eos=True))
        for _ in range(2)
    ]
    assert sampled[0] == sampled[1]


def test_stop_string_is_never_emitted(backend: HFBackend) -> None:
    full = text_of(run(backend, "The sky is", temperature=0, max_tokens=24, ignore_eos=True))
    stop = full[len(full) // 2 : len(full) // 2 + 3]
    assert stop.strip(), "need a visible stop string"
    chunks = run(backend, "The sky is", temperature=0, max_tokens=24, ignore_eos=True, stop=(stop,))
    assert text_of(chunks) == full[: full.index(stop)]
    assert chunks[-1].finish_reason == "stop"


def test_stop_token_ends_generation(backend: HFBackend) -> None:
    chunks = run(backend, "The sky is", temperature=0, max_tokens=20, ignore_eos=True)
    ids = [i for c in chunks for i in c.token_ids]
    chunks = run(
        backend,
        "The sky is",
        temperature=0,
        max_tokens=20,
        ignore_eos=True,
        stop_token_ids=(ids[3],),
    )
    assert chunks[-1].finish_reason == "stop"
    assert (
        chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == ids.index(ids[3]) + 1
    )


def test_long_prompt_is_truncated_to_the_context(backend: HFBackend) -> None:
    context = backend.context_length
    prompt = "Paris is the capital of France. " * 200
    chunks = run(backend, prompt, temperature=0, max_tokens=8, ignore_eos=True)
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.prompt_tokens == context - 8
    assert chunks[-1].usage.completion_tokens == 8


def test_max_tokens_beyond_the_context_keeps_the_whole_prompt(backend: HFBackend) -> None:
    prompt = "The capital of France is Paris."
    prompt_tokens = backend.count_tokens(prompt)
    chunks = run(backend, prompt, temperature=0, max_tokens=10_000, ignore_eos=True)
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.prompt_tokens == prompt_tokens
    assert chunks[-1].usage.completion_tokens == backend.context_length - prompt_tokens
    assert chunks[-1].finish_reason == "length"


def test_logprobs(backend: HFBackend) -> None:
    chunks = run(
        backend,
        "A dog says",
        temperature=0,
        max_tokens=6,
        ignore_eos=True,
        logprobs=True,
        top_logprobs=3,
    )
    logprobs = [lp for c in chunks for lp in c.logprobs]
    assert len(logprobs) == 6
    for entry in logprobs:
        assert entry.logprob <= 0 and len(entry.top) == 3
        # greedy: the chosen token is the most likely one
        assert entry.logprob == pytest.approx(entry.top[0][1])


def test_closing_the_stream_stops_generation(backend: HFBackend) -> None:
    async def first_then_close() -> int:
        stream = backend.generate(
            GenerationRequest(
                "The sky", SamplingParams(temperature=0, max_tokens=200, ignore_eos=True)
            )
        )
        received = 0
        async for _ in stream:
            received += 1
            break
        await stream.aclose()
        # the backend is free again: a second request runs
        chunks = [
            c
            async for c in backend.generate(
                GenerationRequest(
                    "The sky", SamplingParams(temperature=0, max_tokens=2, ignore_eos=True)
                )
            )
        ]
        return received + len(chunks)

    assert asyncio.run(asyncio.wait_for(first_then_close(), 60)) >= 2


def test_chat_prompt_uses_the_tokenizer_template(backend: HFBackend) -> None:
    assert backend.template.name == "tokenizer"
    assert backend.chat_prompt([Message("user", "Hi")]) == (
        "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
    )


def test_explicit_template_wins(random_llama_dir: Path) -> None:
    other = HFBackend.load(str(random_llama_dir), conv_template="vicuna_v1.1", device="cpu")
    assert other.template.name == "vicuna_v1.1"
    assert "USER: Hi ASSISTANT:" in other.chat_prompt([Message("user", "Hi")])


def test_embeddings_are_normalised(backend: HFBackend) -> None:
    vectors = asyncio.run(backend.embed(["a cow", "a cow", "the capital of France"]))
    assert len(vectors) == 3 and len(vectors[0]) == backend.model.config.hidden_size
    assert vectors[0] == pytest.approx(vectors[1])
    assert sum(v * v for v in vectors[2]) == pytest.approx(1.0, abs=1e-4)


def test_8bit_without_cuda_is_a_clear_error(random_llama_dir: Path) -> None:
    with pytest.raises(UnsupportedError, match="CUDA"):
        HFBackend.load(str(random_llama_dir), device="cpu", load_8bit=True)


def test_cuda_without_gpu_is_a_clear_error(random_llama_dir: Path) -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    with pytest.raises(UnsupportedError, match="no CUDA GPU"):
        HFBackend.load(str(random_llama_dir), device="cuda")


def _save_lora(base_dir: Path, out: Path, seed: int) -> Path:
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_pretrained(base_dir)
    config = LoraConfig(
        r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], init_lora_weights=False
    )
    peft_model = get_peft_model(model, config)
    peft_model.save_pretrained(out)
    return out


def test_peft_adapters_share_one_base(random_llama_dir: Path, tmp_path: Path) -> None:
    pytest.importorskip("peft")
    first = _save_lora(random_llama_dir, tmp_path / "lora-a", 1)
    second = _save_lora(random_llama_dir, tmp_path / "lora-b", 2)
    shared = HFBackend.load(
        str(random_llama_dir), device="cpu", adapter=[f"a={first}", f"b={second}"]
    )
    assert shared.adapters == ["a", "b"]

    def logits(adapter: str | None) -> Any:
        import torch

        ids = torch.tensor([[5, 6, 7, 8]])
        shared.local._select_adapter(adapter)
        with torch.inference_mode():
            return shared.model(input_ids=ids).logits[0, -1]

    base, a, b = logits(None), logits("a"), logits("b")
    assert not a.allclose(base) and not b.allclose(base) and not a.allclose(b)

    def request(adapter: str | None) -> GenerationRequest:
        params = SamplingParams(temperature=0, max_tokens=6, ignore_eos=True)
        return GenerationRequest("The sky", params, adapter=adapter)

    async def tokens(req: GenerationRequest) -> list[int]:
        return [t for chunk in [c async for c in shared.generate(req)] for t in chunk.token_ids]

    async def solo_then_together() -> tuple[list[list[int]], list[list[int]]]:
        names = [None, "a", "b", "a", None]
        solo = [await tokens(request(name)) for name in names]
        together = await asyncio.gather(*(tokens(request(name)) for name in names))
        return solo, list(together)

    # Requests for different adapters run concurrently (each adapter's group in turn)
    # and each gets exactly what it gets alone.
    solo, together = asyncio.run(solo_then_together())
    assert together == solo
    assert solo[0] != solo[1] or solo[0] != solo[2]
    with pytest.raises(InvalidRequestError, match="not loaded"):
        asyncio.run(shared.generate(GenerationRequest("x", adapter="zzz")).__anext__())


def test_adapter_folder_loads_base_and_adapter(random_llama_dir: Path, tmp_path: Path) -> None:
    pytest.importorskip("peft")
    folder = _save_lora(random_llama_dir, tmp_path / "my-lora", 3)
    loaded = HFBackend.load(str(folder), device="cpu")
    assert loaded.adapters == ["my-lora"]
    assert loaded.template.name == "tokenizer"


def test_encoder_decoder_model_generates(
    random_llama_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from transformers import AutoTokenizer, T5Config, T5ForConditionalGeneration

    tokenizer = AutoTokenizer.from_pretrained(random_llama_dir)
    config = T5Config(
        vocab_size=len(tokenizer),
        d_model=32,
        d_kv=8,
        d_ff=64,
        num_layers=1,
        num_heads=2,
        decoder_start_token_id=tokenizer.pad_token_id,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    folder = tmp_path / "fastchat-t5-tiny"
    T5ForConditionalGeneration(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    t5 = HFBackend.load(str(folder), device="cpu", conv_template="zero_shot")
    assert t5.loaded.info.kind == "seq2seq"
    chunks = run(t5, "Hello", temperature=0, max_tokens=5, ignore_eos=True)
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 5
    assert t5.local is not None
    check_the_serial_loop_paces_its_frames(t5.local, monkeypatch)


def check_the_serial_loop_paces_its_frames(
    runner: LocalRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An encoder-decoder's serial loop hands its chunks over in frames as the batch engines
    do: with a window longer than the reply, the first text, then the rest with the end. (A
    scripted loop: the random model's replies have no text.)"""
    from palestra.backends.hf.sequence import SequenceSpec

    def scripted_loop(sequence: Any, emit: Any) -> None:
        for i in range(9):
            emit(GenerationChunk(f"w{i} ", (i,)))
        emit(GenerationChunk("", (), finish_reason="length", usage=Usage(3, 9)))

    monkeypatch.setattr(runner, "_decode_seq2seq", scripted_loop)

    class Recorder:  # each call_soon_threadsafe is one frame
        def __init__(self) -> None:
            self.frames: list[list[GenerationChunk]] = []
            self.ended = threading.Event()

        def call_soon_threadsafe(self, callback: Any, *args: Any) -> None:
            self.frames.append([])
            callback(*args)

        def deliver(self, item: Any) -> None:
            self.frames[-1].append(item)
            if isinstance(item, BaseException) or item.finish_reason is not None:
                self.ended.set()

    def frames(pacing: Pacing) -> list[list[GenerationChunk]]:
        recorder = Recorder()
        params = SamplingParams(temperature=0, max_tokens=9)
        spec = SequenceSpec([1, 2, 3], 9, params, stop_ids=frozenset(), stop_strings=())
        runner.start(spec, recorder.deliver, pacing, handoff=recorder)
        assert recorder.ended.wait(30)
        return recorder.frames

    assert len(frames(Pacing())) == 10
    held = frames(Pacing(seconds=3600))
    assert [[c.text for c in frame] for frame in held] == [
        ["w0 "],
        [f"w{i} " for i in range(1, 9)] + [""],
    ]


def test_embedding_model_uses_its_family_pooling(random_llama_dir: Path, tmp_path: Path) -> None:
    import torch
    from transformers import AutoTokenizer, BertConfig, BertModel

    tokenizer = AutoTokenizer.from_pretrained(random_llama_dir)
    config = BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=64,
        pad_token_id=0,
    )
    folder = tmp_path / "bge-tiny-en"
    torch.manual_seed(0)
    BertModel(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    bge = HFBackend.load(str(folder), device="cpu")
    assert bge.loaded.info.kind == "embedding"
    vectors = asyncio.run(bge.embed(["a cow says moo", "snow is white"]))
    encoded = tokenizer(["a cow says moo"], return_tensors="pt")
    with torch.inference_mode():
        cls = bge.model(**encoded).last_hidden_state[0, 0]
    assert vectors[0] == pytest.approx(torch.nn.functional.normalize(cls, dim=0).tolist(), abs=1e-5)


SCHEMA = {
    "type": "object",
    "properties": {
        "answer": {"enum": ["Paris", "Rome", "Madrid"]},
        "confidence": {"type": "integer", "minimum": 0, "maximum": 10},
    },
    "required": ["answer", "confidence"],
    "additionalProperties": False,
}


def test_json_schema_output_is_valid(backend: HFBackend) -> None:
    import json

    pytest.importorskip("llguidance")
    for seed in range(3):
        chunks = run(
            backend,
            "The capital of France",
            temperature=1.0,
            seed=seed,
            max_tokens=60,
            json_schema=json.dumps(SCHEMA),
        )
        data = json.loads(text_of(chunks))
        assert data["answer"] in {"Paris", "Rome", "Madrid"}
        assert 0 <= data["confidence"] <= 10 and set(data) == {"answer", "confidence"}
        assert chunks[-1].finish_reason == "stop"


def test_bad_schema_is_refused_before_generation(backend: HFBackend) -> None:
    pytest.importorskip("llguidance")
    with pytest.raises(InvalidRequestError, match="schema"):
        backend.check(SamplingParams(json_schema='{"type": "nonsense"}'))
    with pytest.raises(InvalidRequestError, match="schema"):
        backend.check(SamplingParams(json_schema="{not json"))
