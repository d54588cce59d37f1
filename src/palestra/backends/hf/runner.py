"""What the transformers backend does on the loaded weights: the batch engine (or the
serial loop of an encoder-decoder model), prompt logprobs, embeddings and cross-encoder
scores, and which PEFT adapter the shared weights wear.

`ModelRunner` is that seam as `HFBackend` sees it; `LocalRunner` implements it in the
process that holds the weights, and `engine_process.EngineProcess` implements it by
driving a `LocalRunner` in a process of its own. Requests cross it as `SequenceSpec`s
(plain data: token ids, sampling, stops); the runner builds each one's `Sequence`. It
knows nothing of templates or text prompts.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from dataclasses import replace
from typing import Any, Protocol

import torch

from palestra.backends.delivery import Deliver, Entry, Handoff, flush
from palestra.backends.hf.compiled import compile_refusal
from palestra.backends.hf.constraints import GrammarFactory
from palestra.backends.hf.cpu_threads import use_threads
from palestra.backends.hf.engine import BatchEngine, BatchLimits
from palestra.backends.hf.facts import ModelFacts
from palestra.backends.hf.kv_batch import supports_batching
from palestra.backends.hf.loading import LoadedModel
from palestra.backends.hf.sequence import Sequence, SequenceSpec
from palestra.core.errors import BackendError, UnsupportedError
from palestra.core.types import EVERY_TOKEN, GenerationChunk, Pacing, PromptLogprobs


class ModelRunner(Protocol):
    @property
    def capacity(self) -> int:
        """Sequences decoded together."""

    def start(
        self, spec: SequenceSpec, deliver: Deliver, pacing: Pacing = EVERY_TOKEN
    ) -> Callable[[], None]:
        """Start decoding `spec`; its chunks (or its failure) go to `deliver` on the
        caller's event loop, in frames gathered by `pacing`. Returns the call that stops
        it."""

    async def prompt_logprobs(
        self, ids: list[int], top: int, adapter: str | None
    ) -> PromptLogprobs: ...

    async def embed(self, texts: list[str]) -> list[list[float]]: ...

    async def cross_encode(self, pairs: list[tuple[str, str]], activation: bool) -> list[float]: ...

    async def stats(self) -> dict[str, Any]:
        """The engine's figures for health: batch size, running, prefix cache."""

    async def close(self) -> None: ...


class LocalRunner:
    def __init__(
        self,
        loaded: LoadedModel,
        limits: BatchLimits,
        facts: ModelFacts,
        grammars: GrammarFactory,
    ):
        self.loaded = loaded
        self.model = loaded.model
        self.tokenizer = loaded.tokenizer
        self.facts = facts
        self._threads = limits.threads  # torch work outside the engine: cpu_threads.py
        self._model_lock = threading.Lock()  # one forward pass at a time on the weights
        self._active_adapter: str | None = None
        if loaded.adapters:
            self._active_adapter = self.model.active_adapter
            self._select_adapter(None)
        self.grammars = grammars  # structured output's grammars, shared with the backend
        self.engine: BatchEngine | None = None
        if limits.torch_compile:
            refusal = compile_refusal(facts.kind, loaded.adapters, loaded.device)
            if refusal:
                raise UnsupportedError(refusal)
        if facts.kind in ("chat", "vision"):  # causal LMs; seq2seq decodes serially
            if not supports_batching(self.model):  # e.g. sliding-window caches
                limits = replace(limits, max_batch_size=1, prefix_cache_tokens=0)
            self.engine = BatchEngine(
                self.model,
                loaded.device if not hasattr(self.model, "hf_device_map") else self.model.device,
                limits,
                select_adapter=self._select_adapter,
                model_lock=self._model_lock,
            )

    @property
    def capacity(self) -> int:
        return self.engine.limits.max_batch_size if self.engine is not None else 1

    def sequence(self, spec: SequenceSpec) -> Sequence:
        structure = spec.params.structure
        return Sequence(
            spec,
            tokenizer=self.tokenizer,
            constraint=self.grammars.constraint(structure[1], structure[0]) if structure else None,
        )

    # ------------------------------------------------------------------ generation
    def start(
        self,
        spec: SequenceSpec,
        deliver: Deliver,
        pacing: Pacing = EVERY_TOKEN,
        handoff: Handoff | None = None,
    ) -> Callable[[], None]:
        """`ModelRunner.start`, with `deliver` called through `handoff` (by default the
        caller's event loop). An encoder-decoder's serial loop ends at its next token."""
        sequence = self.sequence(spec)
        handoff = handoff or asyncio.get_running_loop()
        if self.engine is not None:
            engine = self.engine
            engine.submit(sequence, deliver, pacing, handoff)
            return lambda: engine.cancel(sequence)

        entry = Entry(sequence, handoff, deliver, pacing)

        def emit(item: GenerationChunk | BaseException) -> None:
            entry.outbox.append(item)
            flush([entry])

        def decode() -> None:
            try:
                self._decode_seq2seq(sequence, emit)
            except Exception as exc:  # handed to the consumer, never lost in the thread
                emit(exc)

        threading.Thread(target=decode, name="palestra-seq2seq", daemon=True).start()

        def stop() -> None:
            sequence.cancelled = True

        return stop

    async def prompt_logprobs(
        self, ids: list[int], top: int, adapter: str | None
    ) -> PromptLogprobs:
        return await asyncio.to_thread(self.prompt_logprobs_sync, ids, top, adapter)

    def prompt_logprobs_sync(self, ids: list[int], top: int, adapter: str | None) -> PromptLogprobs:
        """vLLM's prompt_logprobs: each prompt token's logprob and rank given the tokens
        before it, with the `top` likeliest tokens at that place (one forward pass)."""
        if self.engine is None:
            raise UnsupportedError(
                "prompt_logprobs are computed for text prompts of decoder models only",
                param="prompt_logprobs",
            )
        use_threads(self._threads)
        with self._model_lock, torch.inference_mode():
            self._select_adapter(adapter)
            device = self.model.device
            logits = self.model(input_ids=torch.tensor([ids], device=device)).logits[0]
        logprobs = logits.float().log_softmax(-1).cpu()
        entries: list[dict[int, tuple[float, int, str]] | None] = [None]
        for position in range(1, len(ids)):
            row = logprobs[position - 1]
            token = ids[position]
            value = float(row[token])
            entry = {token: (value, int((row > value).sum()) + 1, self.tokenizer.decode([token]))}
            if top:
                values, indices = row.topk(top)
                for rank, (other, index) in enumerate(zip(values.tolist(), indices.tolist(),
                                                          strict=True), start=1):  # fmt: skip
                    entry.setdefault(index, (other, rank, self.tokenizer.decode([index])))
            entries.append(entry)
        return tuple(entries)

    def _select_adapter(self, name: str | None) -> None:
        """Point the shared PEFT model at one adapter, or at the bare base (None)."""
        if not self.loaded.adapters or name == self._active_adapter:
            return
        if name is None:
            self.model.base_model.disable_adapter_layers()
        else:
            if self._active_adapter is None:
                self.model.base_model.enable_adapter_layers()
            self.model.set_adapter(name)
        self._active_adapter = name

    # ------------------------------------------------------------------ seq2seq (serial)
    def _decode_seq2seq(
        self, sequence: Sequence, emit: Callable[[GenerationChunk], object]
    ) -> None:
        use_threads(self._threads)
        with self._model_lock, torch.inference_mode():
            self._select_adapter(sequence.adapter)
            self._seq2seq_loop(sequence, emit)

    def _seq2seq_loop(self, sequence: Sequence, emit: Callable[[GenerationChunk], object]) -> None:
        model = self.model
        device = self.loaded.device
        prompt = torch.tensor([sequence.prompt_ids], device=device)
        encoder_outputs = model.get_encoder()(input_ids=prompt)
        token = model.config.decoder_start_token_id
        past = None
        while sequence.finished is None and not sequence.cancelled:
            out = model(
                encoder_outputs=encoder_outputs,
                attention_mask=torch.ones_like(prompt),
                decoder_input_ids=torch.tensor([[token]], device=device),
                past_key_values=past,
                use_cache=True,
            )
            past = out.past_key_values
            logits = out.logits[0, -1]
            token = sequence.sample(logits)
            chunk = sequence.advance(token, logits)
            if chunk is not None:
                emit(chunk)

    # ------------------------------------------------------------------ embeddings, scores
    async def embed(self, texts: list[str]) -> list[list[float]]:
        return await asyncio.to_thread(self.embed_sync, texts)

    async def cross_encode(self, pairs: list[tuple[str, str]], activation: bool) -> list[float]:
        return await asyncio.to_thread(self.cross_encode_sync, pairs, activation)

    def embed_sync(self, texts: list[str]) -> list[list[float]]:
        use_threads(self._threads)
        with self._model_lock:
            return self._embed_sync(texts)

    def cross_encode_sync(self, pairs: list[tuple[str, str]], activation: bool) -> list[float]:
        use_threads(self._threads)
        encoded = self.tokenizer(
            [first for first, _ in pairs],
            [second for _, second in pairs],
            padding=True,
            truncation=True,
            max_length=self.facts.context_length,
            return_tensors="pt",
        )
        encoded = {k: v.to(self.loaded.device) for k, v in encoded.items()}
        with self._model_lock, torch.inference_mode():
            logits = self.model(**encoded).logits.float()
        if logits.shape[-1] == 1:
            scores = logits[:, 0].sigmoid() if activation else logits[:, 0]
        else:
            scores = logits.softmax(-1)[:, -1] if activation else logits[:, -1]
        return [float(value) for value in scores.cpu()]

    def _embed_sync(self, texts: list[str]) -> list[list[float]]:
        family = self.loaded.info.family
        pooling = (family.pooling if family else None) or "mean"
        encoded = self.tokenizer(
            texts,
            padding=True,
            truncation=True,
            max_length=self.facts.context_length,
            return_tensors="pt",
        )
        encoded = {
            k: v.to(self.loaded.device)
            for k, v in encoded.items()
            if k in ("input_ids", "attention_mask", "token_type_ids")
        }
        with torch.inference_mode():
            if self.facts.kind == "embedding":
                hidden = self.model(**encoded).last_hidden_state
            else:
                hidden = self.model(**encoded, output_hidden_states=True).hidden_states[-1]
            if pooling == "cls":
                pooled = hidden[:, 0]
            else:
                mask = encoded["attention_mask"].unsqueeze(-1).to(hidden.dtype)
                pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1)
            pooled = torch.nn.functional.normalize(pooled.float(), dim=-1)
        return [row.tolist() for row in pooled.cpu()]

    async def stats(self) -> dict[str, Any]:
        return self.stats_sync()

    def stats_sync(self) -> dict[str, Any]:
        """The engine's figures; a `BackendError` if its decode loop failed."""
        engine = self.engine
        if engine is not None and engine.failure is not None:
            raise BackendError(engine.failure)
        return {
            "max_batch_size": engine.limits.max_batch_size if engine else 1,
            "running": engine.running if engine else 0,
            "decode_steps": engine.steps if engine else 0,
            "loop_restarts": engine.restarts if engine else 0,
            "decode_seconds": engine.decode_seconds if engine else 0.0,
            "prefill_passes": engine.prefill_passes if engine else 0,
            "prefill_seconds": engine.prefill_seconds if engine else 0.0,
            "fresh_prefills": engine.fresh_prefills if engine else 0,
            "prefix_cache": (
                {
                    "tokens": engine.prefix_cache.tokens,
                    "hits": engine.prefix_cache.hits,
                    "reused_tokens": engine.prefix_cache.reused_tokens,
                }
                if engine
                else None
            ),
        }

    async def close(self) -> None:
        await asyncio.to_thread(self.close_sync)

    def close_sync(self) -> None:
        if self.engine is not None:
            self.engine.close()
