"""`LlamaCppBackend`: GGUF models through llama-cpp-python, behind the same seam as the
transformers backend, so the worker, the API server and the judge use it unchanged.

Concurrency: continuous batching in one llama.cpp context of `parallel` sequences, one
decode call per step for all of them (`batching.LlamaBatchEngine`, as llama.cpp's own
server decodes); extra requests wait in the worker's queue. A slot keeps the key/values of
its last conversation, so the next turn only prefills what is new.

Decoding reuses Palestra's `Sequence` for stop strings, stop tokens, lengths, incremental
detokenisation and usage; llama.cpp samples (temperature 0 = greedy, top-p, top-k,
penalties, seed, JSON-schema grammars).
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import threading
from collections.abc import AsyncIterator
from collections.abc import Sequence as Seq
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from palestra.backends.base import Backend, BackendHealth
from palestra.backends.chunk_stream import ChunkStream
from palestra.backends.llamacpp.batching import LlamaBatchEngine
from palestra.backends.options import LlamaCppOptions, given_options
from palestra.core.errors import InvalidRequestError, UnsupportedError
from palestra.core.types import GenerationChunk, GenerationRequest, SamplingParams
from palestra.templates.resolve import resolve_template
from palestra.templates.spec import ChatTemplate

_LOAD_LOCK = threading.Lock()
METADATA_CONTEXT = 64  # the loading context's size: it tokenizes, it never decodes


def cpu_flags() -> frozenset[str]:
    """The CPU's feature flags as Linux lists them (none elsewhere)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return frozenset()
    for line in text.splitlines():
        if line.startswith("flags"):
            return frozenset(line.split(":", 1)[1].split())
    return frozenset()


def open_llama(repack: bool, **kwargs: Any) -> Any:
    """A `llama_cpp.Llama`; without llama.cpp's extra buffer types (repacked weights)
    when `repack` is false. llama-cpp-python has no argument for `use_extra_bufts`: its
    model parameters come from `llama_model_default_params()` inside `Llama.__init__`, so
    that function is wrapped for the length of the load."""
    import llama_cpp
    from llama_cpp import llama_cpp as bindings

    if repack:
        return llama_cpp.Llama(**kwargs)
    with _LOAD_LOCK:
        default = bindings.llama_model_default_params

        def without_extra_buffers() -> Any:
            params = default()
            params.use_extra_bufts = False
            return params

        bindings.llama_model_default_params = without_extra_buffers
        try:
            return llama_cpp.Llama(**kwargs)
        finally:
            bindings.llama_model_default_params = default


def require_llama_cpp() -> None:
    if importlib.util.find_spec("llama_cpp") is None:
        raise UnsupportedError(
            "the llama.cpp backend needs llama-cpp-python: pip install 'palestra[llamacpp]'"
        )


class GGUFTokenizer:
    """llama.cpp's vocabulary: encode, decode and the special tokens (what `Sequence`
    reads to detokenize and stop)."""

    def __init__(self, llm: Any):
        self._llm = llm
        eos, bos = llm.token_eos(), llm.token_bos()
        self.eos_token_id: int | None = eos if eos >= 0 else None
        self.bos_token_id: int | None = bos if bos >= 0 else None
        self.eos_token = self.token_text(eos) if eos >= 0 else None
        self.bos_token = self.token_text(bos) if bos >= 0 else None

    def token_text(self, token: int) -> str:
        return bytes(self._llm.detokenize([token], special=True)).decode("utf-8", "replace")

    def encode(self, text: str) -> list[int]:
        return list(self._llm.tokenize(text.encode("utf-8"), add_bos=False, special=True))

    def decode(self, ids: Seq[int], skip_special_tokens: bool = True) -> str:
        raw = self._llm.detokenize(list(ids), special=not skip_special_tokens)
        return bytes(raw).decode("utf-8", "replace")


class LlamaCppBackend(Backend):
    name = "llamacpp"

    def __init__(
        self,
        llm: Any,
        model_file: str,
        template: ChatTemplate,
        model_name: str,
        *,
        parallel: int,
        context_length: int,
        threads: int,
        repack: bool = True,
    ):
        self._llm = llm  # the model, its vocabulary and metadata (a tiny context of its own)
        self.model_file = model_file
        self.tokenizer = GGUFTokenizer(llm)
        self._template = template
        self._model_name = model_name
        self._context_length = context_length
        self._threads = threads
        self._repack = repack
        self._embedder: Any = None
        self._embed_lock = threading.Lock()
        self._grammars: dict[str, Any] = {}
        self._stop_ids = self._resolve_stop_ids()
        self._engine = LlamaBatchEngine(
            llm,
            slots=parallel,
            context_length=context_length,
            threads=threads,
            grammar_text=lambda schema: self._grammar(schema)._grammar,
            stop_ids=self._stop_ids,
        )

    @classmethod
    def load(
        cls,
        model_path: str | None = None,
        *,
        options: LlamaCppOptions | None = None,
        model_name: str | None = None,
        conv_template: str | None = None,
        **option_values: Any,
    ) -> LlamaCppBackend:
        require_llama_cpp()
        options = given_options(LlamaCppOptions, options, option_values)

        if not model_path:
            raise InvalidRequestError(
                "the llama.cpp backend needs --model-path FILE.gguf "
                "(make one with `palestra convert gguf MODEL_DIR`)"
            )
        from palestra.models.inspect import resolve_model_path

        path = Path(resolve_model_path(model_path))  # a Hub id: its GGUF file, fetched
        if path.is_dir():
            found = sorted(path.glob("*.gguf"))
            if not found:
                raise InvalidRequestError(f"no .gguf file in {path}", param="model_path")
            path = found[0]
        if not path.is_file():
            raise InvalidRequestError(f"{path} does not exist", param="model_path")
        threads = options.threads or (os.cpu_count() or 2)
        repack = options.repacks(cpu_flags())
        try:
            llm = open_llama(
                repack,
                model_path=str(path),
                n_ctx=METADATA_CONTEXT,  # decoding runs in the batch engine's context
                n_threads=threads,
                n_gpu_layers=options.gpu_layers,
                verbose=False,
            )
        except ValueError as exc:  # llama-cpp-python's "Failed to load model from file"
            raise InvalidRequestError(f"cannot load {path}: {exc}", param="model_path") from exc
        from llama_cpp import llama_cpp as bindings

        context_length = options.context_length or int(bindings.llama_model_n_ctx_train(llm.model))
        metadata = llm.metadata or {}
        tokenizer = GGUFTokenizer(llm)
        shim = SimpleNamespace(
            chat_template=metadata.get("tokenizer.chat_template"),
            eos_token=tokenizer.eos_token,
            bos_token=tokenizer.bos_token,
        )
        template = resolve_template(conv_template, shim)
        name = model_name or metadata.get("general.name") or path.stem
        return cls(
            llm,
            str(path),
            template,
            str(name),
            parallel=options.capacity,
            context_length=context_length,
            threads=threads,
            repack=repack,
        )

    # ------------------------------------------------------------------ facts
    @property
    def model_name(self) -> str:
        return self._model_name

    @property
    def template(self) -> ChatTemplate:
        return self._template

    @property
    def context_length(self) -> int:
        return self._context_length

    def tokenize(self, text: str) -> list[int]:
        return list(self.tokenizer.encode(text))

    def detokenize(self, token_ids: Seq[int]) -> str:
        return str(self.tokenizer.decode(list(token_ids)))

    @property
    def capacity(self) -> int:
        return len(self._engine._slots)

    async def health(self) -> BackendHealth:
        detail: dict[str, Any] = {
            "model": self.model_name,
            "backend": self.name,
            "file": self.model_file,
            "parallel": self.capacity,
            "threads": self._threads,
            "running": self._engine.running,
            "decode_steps": self._engine.steps,
            "reused_prompt_tokens": self._engine.reused_tokens,
            "loop_restarts": self._engine.restarts,
        }
        failure = self._engine.failure
        return BackendHealth(failure is None, detail | ({"error": failure} if failure else {}))

    def check(self, sampling: SamplingParams) -> None:
        if sampling.logprobs or sampling.prompt_logprobs is not None:
            raise UnsupportedError(
                "the llama.cpp backend does not return logprobs (nor prompt_logprobs)",
                param="logprobs" if sampling.logprobs else "prompt_logprobs",
            )
        if sampling.regex is not None or sampling.grammar is not None:
            raise UnsupportedError(
                "the llama.cpp backend constrains output to JSON schemas only; regex, choice "
                "and grammar need the transformers backend",
                param="structured_outputs",
            )
        if sampling.json_schema is not None:
            self._grammar(sampling.json_schema)

    def _grammar(self, schema: str) -> Any:
        """The schema's grammar, built once per schema (the worker checks it before the
        request runs, and the decode loop uses it again)."""
        if schema in self._grammars:
            return self._grammars[schema]
        from llama_cpp import LlamaGrammar

        try:
            grammar = LlamaGrammar.from_json_schema(schema, verbose=False)
        except Exception as exc:
            raise InvalidRequestError(
                f"unsupported JSON schema: {exc}", param="response_format"
            ) from exc
        if len(self._grammars) >= 128:  # bounded: forget the oldest schema
            self._grammars.pop(next(iter(self._grammars)))
        self._grammars[schema] = grammar
        return grammar

    def _resolve_stop_ids(self) -> frozenset[int]:
        ids = {self.tokenizer.eos_token_id} - {None}
        for token in self._template.stop_tokens:
            encoded = self.tokenizer.encode(token)
            if len(encoded) == 1:
                ids.add(encoded[0])
        ids.update(self._template.stop_token_ids)
        return frozenset(i for i in ids if i is not None)

    # ------------------------------------------------------------------ generation
    async def generate(self, request: GenerationRequest) -> AsyncIterator[GenerationChunk]:
        from palestra.backends.hf.sequence import Sequence, SequenceSpec

        request = self.prepare(request)
        self.check(request.sampling)
        params = request.sampling
        prompt_ids = (
            list(request.prompt_token_ids)
            if request.prompt_token_ids is not None
            else self.tokenizer.encode(request.prompt)
        )
        if not prompt_ids and self.tokenizer.bos_token_id is not None:
            prompt_ids = [self.tokenizer.bos_token_id]
        room = self.context_length - len(prompt_ids)
        if room < 1:
            raise InvalidRequestError(
                f"the prompt has {len(prompt_ids)} tokens; the context holds {self.context_length}",
                param="messages",
            )
        special = {self.tokenizer.eos_token, self.tokenizer.bos_token}
        spec = SequenceSpec(
            prompt_ids,
            min(params.max_tokens, room),
            params,
            stop_ids=self._stop_ids,
            stop_strings=tuple(s for s in self._template.stop_strings if s not in special),
        )
        sequence = Sequence(spec, tokenizer=self.tokenizer)
        stream = ChunkStream()
        self._engine.submit(sequence, stream.put, request.pacing)
        try:
            async for chunk in stream.chunks():
                yield chunk
        finally:
            self._engine.cancel(sequence)

    async def close(self) -> None:
        await asyncio.to_thread(self._engine.close)

    # ------------------------------------------------------------------ embeddings
    async def embed(self, texts: Seq[str]) -> list[list[float]]:
        if not texts:
            raise InvalidRequestError("no input to embed", param="input")
        return await asyncio.to_thread(self._embed_sync, list(texts))

    def _embed_sync(self, texts: list[str]) -> list[list[float]]:
        import llama_cpp

        with self._embed_lock:
            if self._embedder is None:  # a context that pools hidden states
                self._embedder = open_llama(
                    self._repack,
                    model_path=self.model_file,
                    embedding=True,
                    pooling_type=llama_cpp.LLAMA_POOLING_TYPE_MEAN,
                    n_ctx=self.context_length,
                    n_threads=self._threads,
                    verbose=False,
                )
            vectors = self._embedder.embed(texts, normalize=True)
        return [list(map(float, v)) for v in vectors]
