"""`HFBackend`: the transformers implementation of the `Backend` seam.

Causal language models and image-text-to-text (vision) models generate through a
`BatchEngine` (continuous batching: concurrent requests share forward passes, joining and
leaving between decode steps; an image prompt is prefilled on its own with its pixels, then
decodes in the shared batch); encoder-decoder models decode one request at a time in a
thread. Either way each request is a `Sequence`
(sampling, stops, detokenisation) streamed back to the event loop as delta chunks, and
closing the stream cancels it.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Callable
from collections.abc import Sequence as Seq
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from palestra.backends.base import Backend, BackendHealth
from palestra.backends.chunk_stream import ChunkStream, start_thread
from palestra.backends.hf.constraints import GrammarFactory
from palestra.backends.hf.cpu_threads import run_with_threads, use_threads
from palestra.backends.hf.engine import BatchEngine, BatchLimits, batch_limits
from palestra.backends.hf.kv_batch import supports_batching
from palestra.backends.hf.loading import LoadedModel, load_model
from palestra.backends.hf.sequence import Sequence
from palestra.backends.hf.vision import (
    VisionPrompts,
    conversation_images,
    messages_with_image_parts,
)
from palestra.backends.options import HFOptions, given_options
from palestra.core.errors import InvalidRequestError, UnsupportedError
from palestra.core.types import (
    Conversation,
    GenerationChunk,
    GenerationRequest,
    PromptLogprobs,
    SamplingParams,
)
from palestra.templates.resolve import resolve_template
from palestra.templates.spec import ChatTemplate

SCORING_KINDS = ("embedding", "cross-encoder")  # encoders: they score, never write


class HFBackend(Backend):
    name = "hf"

    def __init__(
        self,
        loaded: LoadedModel,
        template: ChatTemplate,
        model_name: str,
        limits: BatchLimits | None = None,
    ):
        self.loaded = loaded
        self.model = loaded.model
        self.tokenizer = loaded.tokenizer
        self._template = template
        self._model_name = model_name
        self._context_length = _declared_context(self.model, self.tokenizer)
        # Loading an adapter folder itself means "serve that adapter": requests that name
        # no adapter get it (other adapters and the bare base stay selectable by name).
        self._default_adapter = Path(loaded.info.path).name if loaded.info.adapter_base else None
        self._model_lock = threading.Lock()  # one forward pass at a time on the weights
        self._active_adapter: str | None = None
        if loaded.adapters:
            self._active_adapter = self.model.active_adapter
            self._select_adapter(None)
        self._vision = VisionPrompts(loaded.processor) if loaded.processor is not None else None
        self._stop_ids = self._resolve_stop_ids()
        self._grammar_factory: GrammarFactory | None = None
        self._engine: BatchEngine | None = None
        limits = limits or batch_limits(HFOptions())
        self._threads = limits.threads  # torch work outside the engine: cpu_threads.py
        if loaded.info.kind in ("chat", "vision"):  # causal LMs; seq2seq decodes serially
            if not supports_batching(self.model):  # e.g. sliding-window caches
                limits = replace(limits, max_batch_size=1, prefix_cache_tokens=0)
            self._engine = BatchEngine(
                self.model,
                self.loaded.device
                if not hasattr(self.model, "hf_device_map")
                else self.model.device,
                limits,
                select_adapter=self._select_adapter,
                model_lock=self._model_lock,
            )

    @classmethod
    def load(
        cls,
        model_path: str | None = None,
        *,
        options: HFOptions | None = None,
        model_name: str | None = None,
        conv_template: str | None = None,
        **option_values: Any,
    ) -> HFBackend:
        from palestra.models.inspect import resolve_model_path, served_name

        options = given_options(HFOptions, options, option_values)
        path = resolve_model_path(model_path)
        loaded = run_with_threads(options.threads, lambda: load_model(path, options))
        family = loaded.info.family
        if loaded.info.kind in SCORING_KINDS:
            template = resolve_template("raw")
        else:
            template = resolve_template(
                conv_template, loaded.tokenizer, family.template if family else None
            )
        name = model_name or served_name(path, family)
        return cls(loaded, template, name, batch_limits(options))

    # ------------------------------------------------------------------ facts
    @property
    def model_name(self) -> str:
        return self._model_name

    @property
    def template(self) -> ChatTemplate:
        return self._template

    @property
    def adapters(self) -> list[str]:
        return list(self.loaded.adapters)

    @property
    def context_length(self) -> int:
        return self._context_length

    def tokenize(self, text: str) -> list[int]:
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def detokenize(self, token_ids: Seq[int]) -> str:
        return str(self.tokenizer.decode(list(token_ids)))

    @property
    def capacity(self) -> int:
        return self._engine.limits.max_batch_size if self._engine is not None else 1

    @property
    def accepts_images(self) -> bool:
        return self._vision is not None

    def template_messages(self, conversation: Conversation) -> list[dict[str, Any]]:
        if self._vision is None:
            return super().template_messages(conversation)
        return messages_with_image_parts(conversation)

    def prepare(self, request: GenerationRequest) -> GenerationRequest:
        """As every local backend, plus: an image prompt's ids come from the processor,
        with each image's tokens expanded (so the prompt is counted as the model sees it)."""
        prepared = super().prepare(request)
        images = conversation_images(prepared.conversation)
        if images and self._vision is not None and prepared.prompt_token_ids is None:
            ids = self._vision.prompt_ids(prepared.prompt, images)
            prepared = replace(prepared, prompt_token_ids=tuple(ids))
        return prepared

    async def health(self) -> BackendHealth:
        return BackendHealth(
            True,
            {
                "model": self.model_name,
                "backend": self.name,
                "device": str(self.loaded.device),
                "dtype": str(self.model.dtype).replace("torch.", ""),
                "adapters": self.adapters,
                "max_batch_size": self._engine.limits.max_batch_size if self._engine else 1,
                "running": self._engine.running if self._engine else 0,
                "fresh_prefills": self._engine.fresh_prefills if self._engine else 0,
                "prefix_cache": (
                    {
                        "tokens": self._engine.prefix_cache.tokens,
                        "hits": self._engine.prefix_cache.hits,
                        "reused_tokens": self._engine.prefix_cache.reused_tokens,
                    }
                    if self._engine
                    else None
                ),
            },
        )

    async def close(self) -> None:
        if self._engine is not None:
            await asyncio.to_thread(self._engine.close)

    def check(self, sampling: SamplingParams) -> None:
        structure = sampling.structure
        if structure is not None:
            self._grammars().grammar(structure[1], structure[0])

    def _grammars(self) -> GrammarFactory:
        if self._grammar_factory is None:
            vocab = int(getattr(self.model.config, "vocab_size", len(self.tokenizer)))
            self._grammar_factory = GrammarFactory(
                self.tokenizer, vocab, self.tokenizer.eos_token_id
            )
        return self._grammar_factory

    def _resolve_stop_ids(self) -> frozenset[int]:
        ids: set[int] = set()
        eos = getattr(getattr(self.model, "generation_config", None), "eos_token_id", None)
        ids.update(eos if isinstance(eos, list) else [eos] if eos is not None else [])
        if self.tokenizer.eos_token_id is not None:
            ids.add(self.tokenizer.eos_token_id)
        vocab = self.tokenizer.get_vocab()
        for token in self._template.stop_tokens:
            if token in vocab:
                ids.add(vocab[token])
        ids.update(i for i in self._template.stop_token_ids if i in vocab.values())
        return frozenset(ids)

    # ------------------------------------------------------------------ generation
    async def generate(self, request: GenerationRequest) -> AsyncIterator[GenerationChunk]:
        if self.loaded.info.kind in SCORING_KINDS:
            raise UnsupportedError(
                f"{self.model_name} is an {self.loaded.info.kind} model: it does not write "
                "text. Use /v1/embeddings, /v1/score or /v1/rerank",
                param="model",
            )
        request = self.prepare(request)
        if request.adapter and request.adapter not in self.adapters:
            loaded = ", ".join(self.adapters) or "none"
            raise InvalidRequestError(
                f"adapter {request.adapter!r} is not loaded; loaded: {loaded}", param="model"
            )
        sequence = self._new_sequence(request)
        asked = request.sampling.prompt_logprobs
        if asked is not None:
            if sequence.vision_inputs is not None or self._engine is None:
                raise UnsupportedError(
                    "prompt_logprobs are computed for text prompts of decoder models only",
                    param="prompt_logprobs",
                )
            yield GenerationChunk(
                "",
                prompt_logprobs=await asyncio.to_thread(
                    self._prompt_logprobs, sequence.prompt_ids, asked, sequence.adapter
                ),
            )
        stream = ChunkStream()
        thread = None
        if self._engine is not None:
            self._engine.submit(sequence, stream.put, request.stream_interval)
        else:  # encoder-decoder models decode one request at a time in their own thread
            thread = start_thread(
                "palestra-seq2seq", lambda emit: self._decode_seq2seq(sequence, emit), stream
            )
        try:
            async for chunk in stream.chunks():
                yield chunk
        finally:
            sequence.cancelled = True
            if self._engine is not None:
                self._engine.cancel(sequence)
            elif thread is not None:
                await asyncio.to_thread(thread.join)

    def _prompt_logprobs(self, ids: list[int], top: int, adapter: str | None) -> PromptLogprobs:
        """vLLM's prompt_logprobs: each prompt token's logprob and rank given the tokens
        before it, with the `top` likeliest tokens at that place (one forward pass)."""
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

    def _new_sequence(self, request: GenerationRequest) -> Sequence:
        params = request.sampling
        images = conversation_images(request.conversation) if self._vision else ()
        if images and self._vision is not None:
            if request.prompt_token_ids and len(request.prompt_token_ids) >= self.context_length:
                raise InvalidRequestError(  # cutting the prompt would cut an image apart
                    f"this model's context is {self.context_length} tokens; the prompt with "
                    f"its images has {len(request.prompt_token_ids)}. Send fewer images",
                    param="messages",
                    code="context_length_exceeded",
                )
            vision_inputs = self._vision.take(request.prompt, images)
        else:
            vision_inputs = None
        prompt_ids, max_new = self._prompt_ids(request, params.max_tokens)
        special = set(self.tokenizer.all_special_tokens)
        return Sequence(
            prompt_ids,
            max_new,
            params,
            tokenizer=self.tokenizer,
            stop_ids=self._stop_ids,
            stop_strings=tuple(s for s in self._template.stop_strings if s not in special),
            constraint=(
                self._grammars().constraint(params.structure[1], params.structure[0])
                if params.structure
                else None
            ),
            adapter=request.adapter or self._default_adapter,
            vision_inputs=vision_inputs,
        )

    def _select_adapter(self, name: str | None) -> None:
        """Point the shared PEFT model at one adapter, or at the bare base (None)."""
        if not self.adapters or name == self._active_adapter:
            return
        if name is None:
            self.model.base_model.disable_adapter_layers()
        else:
            if self._active_adapter is None:
                self.model.base_model.enable_adapter_layers()
            self.model.set_adapter(name)
        self._active_adapter = name

    def _prompt_ids(self, request: GenerationRequest, max_new: int) -> tuple[list[int], int]:
        if request.prompt_token_ids is not None:
            ids = list(request.prompt_token_ids)
        else:
            ids = self.tokenizer(request.prompt, add_special_tokens=False)["input_ids"]
        if not ids:
            bos = self.tokenizer.bos_token_id
            ids = [bos if bos is not None else self.tokenizer.eos_token_id]
        context = self.context_length
        if len(ids) < context:  # the prompt fits: generate into the room that is left
            return ids, min(max_new, context - len(ids))
        # The prompt alone fills the context: keep its end (where the question is) and
        # leave room for up to a quarter of the context of new tokens.
        room = max(1, min(max_new, context // 4))
        ids = ids[-(context - room) :]
        return ids, room

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

    # ------------------------------------------------------------------ embeddings
    async def embed(self, texts: Seq[str]) -> list[list[float]]:
        if not texts:
            raise InvalidRequestError("no input to embed", param="input")
        return await asyncio.to_thread(self._embed_locked, list(texts))

    def _embed_locked(self, texts: list[str]) -> list[list[float]]:
        use_threads(self._threads)
        if self.loaded.info.kind == "cross-encoder":
            raise UnsupportedError(
                f"{self.model_name} is a cross-encoder: it scores text pairs "
                "(/v1/score, /v1/rerank) and has no embeddings"
            )
        with self._model_lock:
            return self._embed_sync(texts)

    async def score(self, pairs: Seq[tuple[str, str]], activation: bool = True) -> list[float]:
        """A cross-encoder's relevance of each pair (the sigmoid of its one logit, or the
        softmax's last class; raw logits without `activation`), or an embedding model's
        cosine similarity of the two texts (as vLLM scores)."""
        kind = self.loaded.info.kind
        if kind == "embedding":
            firsts = await self.embed([first for first, _ in pairs])
            seconds = await self.embed([second for _, second in pairs])
            return [
                sum(a * b for a, b in zip(u, v, strict=True))
                for u, v in zip(firsts, seconds, strict=True)
            ]
        if kind != "cross-encoder":
            return await super().score(pairs, activation)
        return await asyncio.to_thread(self._cross_encode, list(pairs), activation)

    def _cross_encode(self, pairs: list[tuple[str, str]], activation: bool) -> list[float]:
        use_threads(self._threads)
        encoded = self.tokenizer(
            [first for first, _ in pairs],
            [second for _, second in pairs],
            padding=True,
            truncation=True,
            max_length=self.context_length,
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
            max_length=self.context_length,
            return_tensors="pt",
        )
        encoded = {
            k: v.to(self.loaded.device)
            for k, v in encoded.items()
            if k in ("input_ids", "attention_mask", "token_type_ids")
        }
        with torch.inference_mode():
            if self.loaded.info.kind == "embedding":
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


def _declared_context(model: Any, tokenizer: Any) -> int:
    """The model config's context length, else the tokenizer's limit, else 2048."""
    from palestra.models.inspect import context_length

    declared = context_length(model.config.to_dict())
    if declared:
        return declared
    limit = getattr(tokenizer, "model_max_length", 0)
    return limit if 0 < limit < 1_000_000 else 2048
