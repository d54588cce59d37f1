"""`HFBackend`: the transformers implementation of the `Backend` seam.

The backend is the front: the tokenizer, the chat template, the checks and the prompt's
ids. What runs on the weights sits behind a `ModelRunner` (`runner.py`): in this process
(`LocalRunner`), or, with `--engine-process`, in a process of its own
(`engine_process.py`), so that the worker's HTTP work no longer shares the engine's
interpreter lock.

Causal language models and image-text-to-text (vision) models generate through a
`BatchEngine` (continuous batching: concurrent requests share forward passes, joining and
leaving between decode steps; an image prompt is prefilled on its own with its pixels, then
decodes in the shared batch); encoder-decoder models decode one request at a time in a
thread. Either way each request is a `Sequence` (sampling, stops, detokenisation) streamed
back to the event loop as delta chunks, and closing the stream cancels it.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from collections.abc import Sequence as Seq
from dataclasses import replace
from typing import Any

from palestra.backends.base import Backend, BackendHealth
from palestra.backends.chunk_stream import ChunkStream
from palestra.backends.hf.constraints import GrammarFactory
from palestra.backends.hf.cpu_threads import run_with_threads
from palestra.backends.hf.engine import BatchEngine, BatchLimits, batch_limits
from palestra.backends.hf.facts import ModelFacts
from palestra.backends.hf.loading import LoadedModel, load_model
from palestra.backends.hf.runner import LocalRunner, ModelRunner
from palestra.backends.hf.sequence import SequenceSpec
from palestra.backends.hf.vision import (
    VisionPrompts,
    conversation_images,
    messages_with_image_parts,
)
from palestra.backends.options import HFOptions, given_options
from palestra.core.errors import BackendError, InvalidRequestError, UnsupportedError
from palestra.core.types import (
    Conversation,
    GenerationChunk,
    GenerationRequest,
    SamplingParams,
)
from palestra.templates.resolve import resolve_template
from palestra.templates.spec import ChatTemplate

logger = logging.getLogger(__name__)

SCORING_KINDS = ("embedding", "cross-encoder")  # encoders: they score, never write


class HFBackend(Backend):
    name = "hf"

    def __init__(
        self,
        tokenizer: Any,
        template: ChatTemplate,
        model_name: str,
        facts: ModelFacts,
        runner: ModelRunner,
        *,
        grammars: GrammarFactory | None = None,
        processor: Any = None,
    ):
        """The front for the weights `runner` holds (see `in_process` and `load`);
        `grammars`: the runner's, when it shares this process (one compile per schema)."""
        self.tokenizer = tokenizer
        self._template = template
        self._model_name = model_name
        self.facts = facts
        self._runner = runner
        self._grammars = grammars or grammar_factory(tokenizer, facts)
        self._vision = VisionPrompts(processor) if processor is not None else None
        self._stop_ids = resolve_stop_ids(tokenizer, template, facts.eos_ids)
        special = set(tokenizer.all_special_tokens)  # they stop as ids, not as text
        self._stop_strings = tuple(s for s in template.stop_strings if s not in special)

    @classmethod
    def in_process(
        cls,
        loaded: LoadedModel,
        template: ChatTemplate,
        model_name: str,
        limits: BatchLimits | None = None,
    ) -> HFBackend:
        """A backend whose weights (`loaded`) run here, in a `LocalRunner`."""
        facts = ModelFacts.of(loaded)
        grammars = grammar_factory(loaded.tokenizer, facts)
        runner = LocalRunner(loaded, limits or batch_limits(HFOptions()), facts, grammars)
        return cls(
            loaded.tokenizer,
            template,
            model_name,
            facts,
            runner,
            grammars=grammars,
            processor=loaded.processor,
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
        if options.engine_process == "on":
            from palestra.backends.hf.engine_process import EngineProcess, serves_in_process

            reason = serves_in_process(path)
            if reason is None:
                return EngineProcess.backend(path, options, model_name, conv_template)
            logger.warning("--engine-process: %s; its engine runs in the worker", reason)
        loaded = run_with_threads(options.threads, lambda: load_model(path, options))
        family = loaded.info.family
        if loaded.info.kind in SCORING_KINDS:
            template = resolve_template("raw")
        else:
            template = resolve_template(
                conv_template, loaded.tokenizer, family.template if family else None
            )
        name = model_name or served_name(path, family)
        return cls.in_process(loaded, template, name, batch_limits(options))

    # ------------------------------------------------------------------ facts
    @property
    def local(self) -> LocalRunner | None:
        """The runner, where the weights are in this process (None behind an engine
        process): its model and engine are for tests and benchmarks."""
        return self._runner if isinstance(self._runner, LocalRunner) else None

    @property
    def engine(self) -> BatchEngine | None:
        """The in-process batch engine, if any (see `local`)."""
        return self.local.engine if self.local is not None else None

    @property
    def model(self) -> Any:
        """The loaded weights, where this process holds them."""
        return self._in_process().model

    @property
    def loaded(self) -> LoadedModel:
        return self._in_process().loaded

    def _in_process(self) -> LocalRunner:
        if self.local is None:
            raise UnsupportedError(f"{self.model_name}'s weights are in its engine process")
        return self.local

    @property
    def model_name(self) -> str:
        return self._model_name

    @property
    def template(self) -> ChatTemplate:
        return self._template

    @property
    def adapters(self) -> list[str]:
        return list(self.facts.adapters)

    @property
    def context_length(self) -> int:
        return self.facts.context_length

    def tokenize(self, text: str) -> list[int]:
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def detokenize(self, token_ids: Seq[int]) -> str:
        return str(self.tokenizer.decode(list(token_ids)))

    @property
    def capacity(self) -> int:
        return self._runner.capacity

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
        detail: dict[str, Any] = {
            "model": self.model_name,
            "backend": self.name,
            "device": self.facts.device,
            "dtype": self.facts.dtype,
            "adapters": self.adapters,
        }
        try:
            detail |= await self._runner.stats()
        except BackendError as exc:  # the engine process is gone, or its loop failed
            return BackendHealth(False, detail | {"error": str(exc)})
        return BackendHealth(True, detail)

    async def close(self) -> None:
        await self._runner.close()

    def check(self, sampling: SamplingParams) -> None:
        structure = sampling.structure
        if structure is not None:
            self._grammars.grammar(structure[1], structure[0])

    # ------------------------------------------------------------------ generation
    async def generate(self, request: GenerationRequest) -> AsyncIterator[GenerationChunk]:
        if self.facts.kind in SCORING_KINDS:
            raise UnsupportedError(
                f"{self.model_name} is an {self.facts.kind} model: it does not write "
                "text. Use /v1/embeddings, /v1/score or /v1/rerank",
                param="model",
            )
        request = self.prepare(request)
        if request.adapter and request.adapter not in self.adapters:
            loaded = ", ".join(self.adapters) or "none"
            raise InvalidRequestError(
                f"adapter {request.adapter!r} is not loaded; loaded: {loaded}", param="model"
            )
        spec = self._sequence_spec(request)
        asked = request.sampling.prompt_logprobs
        if asked is not None:
            if spec.vision_inputs is not None:
                raise UnsupportedError(
                    "prompt_logprobs are computed for text prompts of decoder models only",
                    param="prompt_logprobs",
                )
            yield GenerationChunk(
                "",
                prompt_logprobs=await self._runner.prompt_logprobs(
                    spec.prompt_ids, asked, spec.adapter
                ),
            )
        stream = ChunkStream()
        stop = self._runner.start(spec, stream.put, request.pacing)
        try:
            async for chunk in stream.chunks():
                yield chunk
        finally:
            stop()

    def _sequence_spec(self, request: GenerationRequest) -> SequenceSpec:
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
        return SequenceSpec(
            prompt_ids,
            max_new,
            params,
            stop_ids=self._stop_ids,
            stop_strings=self._stop_strings,
            adapter=request.adapter or self.facts.default_adapter,
            vision_inputs=vision_inputs,
        )

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

    # ------------------------------------------------------------------ embeddings
    async def embed(self, texts: Seq[str]) -> list[list[float]]:
        if not texts:
            raise InvalidRequestError("no input to embed", param="input")
        if self.facts.kind == "cross-encoder":
            raise UnsupportedError(
                f"{self.model_name} is a cross-encoder: it scores text pairs "
                "(/v1/score, /v1/rerank) and has no embeddings"
            )
        return await self._runner.embed(list(texts))

    async def score(self, pairs: Seq[tuple[str, str]], activation: bool = True) -> list[float]:
        """A cross-encoder's relevance of each pair (the sigmoid of its one logit, or the
        softmax's last class; raw logits without `activation`), or an embedding model's
        cosine similarity of the two texts (as vLLM scores)."""
        kind = self.facts.kind
        if kind == "embedding":
            firsts = await self.embed([first for first, _ in pairs])
            seconds = await self.embed([second for _, second in pairs])
            return [
                sum(a * b for a, b in zip(u, v, strict=True))
                for u, v in zip(firsts, seconds, strict=True)
            ]
        if kind != "cross-encoder":
            return await super().score(pairs, activation)
        return await self._runner.cross_encode(list(pairs), activation)


def grammar_factory(tokenizer: Any, facts: ModelFacts) -> GrammarFactory:
    return GrammarFactory(tokenizer, facts.vocab_size, tokenizer.eos_token_id)


def resolve_stop_ids(tokenizer: Any, template: ChatTemplate, eos_ids: Seq[int]) -> frozenset[int]:
    """The token ids that end a reply: the model's and tokenizer's end of sequence and the
    template's stop tokens."""
    ids: set[int] = set(eos_ids)
    if tokenizer.eos_token_id is not None:
        ids.add(tokenizer.eos_token_id)
    vocab = tokenizer.get_vocab()
    for token in template.stop_tokens:
        if token in vocab:
            ids.add(vocab[token])
    ids.update(i for i in template.stop_token_ids if i in vocab.values())
    return frozenset(ids)
