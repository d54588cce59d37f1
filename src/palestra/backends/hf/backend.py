"""`HFBackend`: the transformers implementation of the `Backend` seam.

Generation runs a KV-cached decode loop in a worker thread and streams chunks back to the
event loop; closing the stream cancels the loop. One request decodes at a time here
(continuous batching is the throughput issue's work).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import nullcontext
from typing import Any

import torch

from palestra.backends.base import Backend, BackendHealth
from palestra.backends.hf.constraints import GrammarFactory
from palestra.backends.hf.loading import LoadedModel, LoadOptions, load_model
from palestra.backends.hf.sampling import TokenSampler, token_logprobs
from palestra.backends.hf.stopping import StopStringMatcher
from palestra.core.errors import InvalidRequestError, PalestraError, UnsupportedError
from palestra.core.types import (
    GenerationChunk,
    GenerationRequest,
    SamplingParams,
    TokenLogprob,
    Usage,
)
from palestra.templates.resolve import resolve_template
from palestra.templates.spec import ChatTemplate

_DONE = object()


class HFBackend(Backend):
    name = "hf"

    def __init__(self, loaded: LoadedModel, template: ChatTemplate, model_name: str):
        self.loaded = loaded
        self.model = loaded.model
        self.tokenizer = loaded.tokenizer
        self._template = template
        self._model_name = model_name
        self._lock = asyncio.Lock()
        self._stop_ids = self._resolve_stop_ids()
        self._grammar_factory: GrammarFactory | None = None

    @classmethod
    def load(
        cls,
        model_path: str | None = None,
        *,
        model_name: str | None = None,
        conv_template: str | None = None,
        device: str = "auto",
        dtype: str = "auto",
        num_gpus: int = 1,
        max_gpu_memory: str | None = None,
        load_8bit: bool = False,
        adapters: dict[str, str] | None = None,
    ) -> HFBackend:
        from palestra.models.inspect import resolve_model_path

        path = resolve_model_path(model_path)
        loaded = load_model(
            path, LoadOptions(device, dtype, num_gpus, max_gpu_memory, load_8bit, adapters or {})
        )
        family = loaded.info.family
        if loaded.info.kind == "embedding":
            template = resolve_template("raw")
        else:
            template = resolve_template(
                conv_template, loaded.tokenizer, family.template if family else None
            )
        name = model_name or (
            family.id
            if family and family.id == "palestra-tiny"
            else path.rstrip("/").rsplit("/", 1)[-1]
        )
        return cls(loaded, template, name)

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
        config = self.model.config
        for key in ("max_position_embeddings", "n_positions", "seq_length", "max_sequence_length"):
            value = getattr(config, key, None)
            if isinstance(value, int) and value > 0:
                return value
        limit = getattr(self.tokenizer, "model_max_length", 0)
        return limit if 0 < limit < 1_000_000 else 2048

    def count_tokens(self, text: str) -> int:
        return len(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    async def health(self) -> BackendHealth:
        return BackendHealth(
            True,
            {
                "model": self.model_name,
                "backend": self.name,
                "device": str(self.loaded.device),
                "dtype": str(self.model.dtype).replace("torch.", ""),
                "adapters": self.adapters,
            },
        )

    def check(self, sampling: SamplingParams) -> None:
        if sampling.json_schema is not None:
            self._grammars().grammar(sampling.json_schema)

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
        if request.adapter and request.adapter not in self.adapters:
            loaded = ", ".join(self.adapters) or "none"
            raise InvalidRequestError(
                f"adapter {request.adapter!r} is not loaded; loaded: {loaded}", param="model"
            )
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[Any] = asyncio.Queue()
        cancel = threading.Event()

        def emit(item: Any) -> None:
            loop.call_soon_threadsafe(queue.put_nowait, item)

        def run() -> None:
            try:
                self._generate_sync(request, emit, cancel)
            except Exception as exc:  # handed to the consumer, never lost in the thread
                emit(exc)
            finally:
                emit(_DONE)

        async with self._lock:
            thread = threading.Thread(target=run, name="palestra-hf-generate", daemon=True)
            thread.start()
            try:
                while (item := await queue.get()) is not _DONE:
                    if isinstance(item, BaseException):
                        if isinstance(item, PalestraError):
                            raise item
                        raise UnsupportedError(f"generation failed: {item}") from item
                    yield item
            finally:
                cancel.set()
                await asyncio.to_thread(thread.join)

    def _adapter_context(self, request: GenerationRequest) -> Any:
        if not self.adapters:
            return nullcontext()
        if request.adapter:
            self.model.set_adapter(request.adapter)
            return nullcontext()
        return self.model.disable_adapter()

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

    def _generate_sync(
        self, request: GenerationRequest, emit: Callable[[Any], None], cancel: threading.Event
    ) -> None:
        params = request.sampling
        prompt_ids, max_new = self._prompt_ids(request, params.max_tokens)
        stop_ids = set(params.stop_token_ids)
        if not params.ignore_eos:
            stop_ids |= self._stop_ids
        special = set(self.tokenizer.all_special_tokens)
        stop_strings = tuple(s for s in self._template.stop_strings if s not in special)
        matcher = StopStringMatcher(stop_strings + params.stop)
        sampler = TokenSampler(params)
        constraint = self._grammars().constraint(params.json_schema) if params.json_schema else None
        step_logits = self._decode_steps(prompt_ids)
        generated: list[int] = []
        pending_ids: list[int] = []
        pending_logprobs: list[TokenLogprob] = []
        finish = "length"
        text = ""
        string_stop = False
        with torch.inference_mode(), self._adapter_context(request):
            for _ in range(max_new):
                if cancel.is_set():
                    return
                logits = step_logits(generated[-1] if generated else None)
                token = sampler.sample(logits, constraint)
                if params.logprobs:
                    chosen, top = token_logprobs(logits, token, params.top_logprobs)
                    pending_logprobs.append(
                        TokenLogprob(
                            self._token_text(token),
                            token,
                            chosen,
                            tuple((self._token_text(i), lp) for i, lp in top),
                        )
                    )
                if token in stop_ids:  # not part of the text, so not of the logprobs
                    finish = "stop"
                    generated.append(token)
                    if params.logprobs:
                        pending_logprobs.pop()
                    break
                if constraint is not None:
                    constraint.accept(token)
                generated.append(token)
                pending_ids.append(token)
                text = self.tokenizer.decode(generated, skip_special_tokens=True)
                if text.endswith("\ufffd"):  # an unfinished multi-byte character
                    continue
                delta, stopped = matcher.update(text)
                if delta or stopped or pending_logprobs:
                    emit(GenerationChunk(delta, tuple(pending_ids), tuple(pending_logprobs)))
                    pending_ids, pending_logprobs = [], []
                if stopped:
                    finish, string_stop = "stop", True
                    break
                if constraint is not None and constraint.finished:
                    finish = "stop"  # the JSON value is complete
                    break
        tail = "" if string_stop else matcher.flush(text)
        completion = len(generated)
        emit(
            GenerationChunk(
                tail,
                tuple(pending_ids),
                tuple(pending_logprobs),
                finish_reason=finish,  # type: ignore[arg-type]
                usage=Usage(len(prompt_ids), completion),
            )
        )

    def _token_text(self, token: int) -> str:
        return str(self.tokenizer.decode([token]))

    def _decode_steps(self, prompt_ids: list[int]) -> Callable[[int | None], torch.Tensor]:
        """A function that feeds the previous token (None: the prompt) and returns logits."""
        model = self.model
        device = self.loaded.device if not hasattr(model, "hf_device_map") else model.device
        state: dict[str, Any] = {"past": None}
        prompt = torch.tensor([prompt_ids], device=device)
        if self.loaded.info.kind == "seq2seq":
            encoder_outputs = model.get_encoder()(input_ids=prompt)
            start = model.config.decoder_start_token_id

            def seq2seq_step(previous: int | None) -> torch.Tensor:
                token = start if previous is None else previous
                out = model(
                    encoder_outputs=encoder_outputs,
                    attention_mask=torch.ones_like(prompt),
                    decoder_input_ids=torch.tensor([[token]], device=device),
                    past_key_values=state["past"],
                    use_cache=True,
                )
                state["past"] = out.past_key_values
                return out.logits[0, -1]

            return seq2seq_step

        def causal_step(previous: int | None) -> torch.Tensor:
            inputs = prompt if previous is None else torch.tensor([[previous]], device=device)
            out = model(input_ids=inputs, past_key_values=state["past"], use_cache=True)
            state["past"] = out.past_key_values
            return out.logits[0, -1]

        return causal_step

    # ------------------------------------------------------------------ embeddings
    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        if not texts:
            raise InvalidRequestError("no input to embed", param="input")
        async with self._lock:
            return await asyncio.to_thread(self._embed_sync, list(texts))

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
