"""`VLLMBackend`: vLLM's AsyncLLM engine behind the `Backend` seam (GPU; the `vllm` extra).

vLLM brings its own continuous batching, paged attention and prefix caching; Palestra keeps
what sits above the seam: the chat template it resolves, the wire protocol, admission and
the OpenAI API. Requests stream as deltas (`RequestOutputKind.DELTA`); closing the stream
aborts the request in the engine. `--num-gpus N` is tensor parallelism over N GPUs; across
machines vLLM runs on a Ray cluster (`distributed_executor_backend="ray"`, started with
`ray start` on each node before the worker).
"""

from __future__ import annotations

import importlib.util
import uuid
from collections.abc import AsyncIterator, Sequence
from typing import Any

from palestra.backends.base import Backend, BackendHealth
from palestra.backends.options import VLLMOptions, given_options
from palestra.core.errors import InvalidRequestError, UnsupportedError
from palestra.core.types import (
    GenerationChunk,
    GenerationRequest,
    SamplingParams,
    TokenLogprob,
    Usage,
)
from palestra.templates.resolve import resolve_template
from palestra.templates.spec import ChatTemplate


def require_vllm() -> None:
    if importlib.util.find_spec("vllm") is None:
        raise UnsupportedError("the vLLM backend needs vllm and a GPU: pip install vllm")


class VLLMBackend(Backend):
    name = "vllm"

    def __init__(self, engine: Any, tokenizer: Any, template: ChatTemplate, model_name: str,
                 context_length: int, capacity: int = 256):  # fmt: skip
        self.engine = engine
        self._capacity = capacity
        self.tokenizer = tokenizer
        self._template = template
        self._model_name = model_name
        self._context_length = context_length

    @classmethod
    def load(
        cls,
        model_path: str | None = None,
        *,
        options: VLLMOptions | None = None,
        model_name: str | None = None,
        conv_template: str | None = None,
        **option_values: Any,
    ) -> VLLMBackend:
        require_vllm()
        options = given_options(VLLMOptions, options, option_values)
        from transformers import AutoTokenizer
        from vllm.engine.arg_utils import AsyncEngineArgs
        from vllm.v1.engine.async_llm import AsyncLLM

        from palestra.models.inspect import (
            check_remote_code,
            inspect_model,
            resolve_model_path,
            served_name,
        )

        path = resolve_model_path(model_path)
        info = inspect_model(path)
        remote_code = check_remote_code([path], options.trust_remote_code, "--trust-remote-code")
        tokenizer = AutoTokenizer.from_pretrained(path, **remote_code)
        family = info.family
        template = resolve_template(conv_template, tokenizer, family.template if family else None)
        args = AsyncEngineArgs(
            model=path,
            tokenizer=path,
            dtype=options.dtype,
            tensor_parallel_size=max(1, options.num_gpus),
            gpu_memory_utilization=options.gpu_memory_utilization,
            distributed_executor_backend=options.distributed_executor_backend,
            max_model_len=options.max_model_len or None,
            max_num_seqs=options.max_num_seqs,
            trust_remote_code=options.trust_remote_code,
            enable_prefix_caching=True,
        )
        engine = AsyncLLM.from_engine_args(args)
        context = int(engine.model_config.max_model_len)
        name = model_name or served_name(path, family)
        return cls(engine, tokenizer, template, name, context, options.capacity)

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
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def detokenize(self, token_ids: Sequence[int]) -> str:
        return str(self.tokenizer.decode(list(token_ids)))

    @property
    def capacity(self) -> int:
        return self._capacity

    async def health(self) -> BackendHealth:
        return BackendHealth(True, {"model": self.model_name, "backend": self.name})

    def check(self, sampling: SamplingParams) -> None:
        return None  # vLLM validates its own parameters (structured output included)

    async def close(self) -> None:
        self.engine.shutdown()

    def sampling_params(self, params: SamplingParams) -> Any:
        """Palestra's sampling parameters as vLLM's, streamed as deltas."""
        from vllm.sampling_params import RequestOutputKind
        from vllm.sampling_params import SamplingParams as VllmSampling

        extra: dict[str, Any] = {}
        if params.structure is not None:
            import json

            from vllm.sampling_params import StructuredOutputsParams

            kind, text = params.structure
            value = json.loads(text) if kind == "json" else text
            extra["structured_outputs"] = StructuredOutputsParams(**{kind: value})
        stop_tokens = [t for t in self._template.stop_tokens if t != self.tokenizer.eos_token]
        vocab = self.tokenizer.get_vocab()
        return VllmSampling(
            n=1,
            temperature=params.temperature,
            top_p=params.top_p,
            top_k=params.top_k if params.top_k > 0 else -1,
            max_tokens=params.max_tokens,
            repetition_penalty=params.repetition_penalty,
            presence_penalty=params.presence_penalty,
            frequency_penalty=params.frequency_penalty,
            seed=params.seed,
            stop=list(self._template.stop_strings) + list(params.stop),
            stop_token_ids=list(params.stop_token_ids)
            + [vocab[t] for t in stop_tokens if t in vocab],
            ignore_eos=params.ignore_eos,
            logprobs=(params.top_logprobs or 1) if params.logprobs else None,
            prompt_logprobs=params.prompt_logprobs,
            output_kind=RequestOutputKind.DELTA,
            skip_special_tokens=True,
            **extra,
        )

    async def generate(self, request: GenerationRequest) -> AsyncIterator[GenerationChunk]:
        request = self.prepare(request)
        if request.adapter:
            raise InvalidRequestError(
                "the vLLM backend serves no PEFT adapters here", param="model"
            )
        from vllm import TokensPrompt

        prompt: Any = (
            TokensPrompt(prompt_token_ids=list(request.prompt_token_ids))
            if request.prompt_token_ids is not None
            else request.prompt
        )
        request_id = request.request_id or uuid.uuid4().hex
        completion = 0
        prompt_tokens = 0
        finished = prompt_sent = False
        try:
            async for output in self.engine.generate(
                prompt=prompt,
                sampling_params=self.sampling_params(request.sampling),
                request_id=request_id,
            ):
                prompt_tokens = len(output.prompt_token_ids or [])
                choice = output.outputs[0]
                completion += len(choice.token_ids)
                finished = output.finished
                prompt_logprobs = None
                wanted = request.sampling.prompt_logprobs is not None and not prompt_sent
                if wanted and output.prompt_logprobs:
                    prompt_logprobs = tuple(
                        None
                        if entry is None
                        else {
                            token: (lp.logprob, lp.rank or 0, lp.decoded_token or "")
                            for token, lp in entry.items()
                        }
                        for entry in output.prompt_logprobs
                    )
                    prompt_sent = True
                yield GenerationChunk(
                    choice.text,
                    tuple(choice.token_ids),
                    self._logprobs(choice, request.sampling),
                    finish_reason=("length" if choice.finish_reason == "length" else "stop")
                    if finished
                    else None,
                    usage=Usage(prompt_tokens, completion) if finished else None,
                    prompt_logprobs=prompt_logprobs,
                )
        finally:
            if not finished:
                await self.engine.abort(request_id)

    def _logprobs(self, choice: Any, params: SamplingParams) -> tuple[TokenLogprob, ...]:
        if not params.logprobs or not choice.logprobs:
            return ()
        out = []
        for token, alternatives in zip(choice.token_ids, choice.logprobs, strict=False):
            ranked = sorted(alternatives.items(), key=lambda item: item[1].rank or 0)
            chosen = alternatives[token]
            out.append(
                TokenLogprob(
                    chosen.decoded_token or self.tokenizer.decode([token]),
                    token,
                    float(chosen.logprob),
                    tuple(
                        (lp.decoded_token or self.tokenizer.decode([tid]), float(lp.logprob))
                        for tid, lp in ranked[: params.top_logprobs]
                    ),
                )
            )
        return tuple(out)
