"""`RemoteBackend`: the part every API-provider backend shares.

A remote backend serves a model that runs elsewhere. It sends the conversation
(`GenerationRequest.conversation`: messages, tools, tool choice, response format) to the
provider as it is, because providers apply their own templates, and returns the
provider's tool calls in OpenAI's shape; a request with only a prompt is sent as one user
message. Token counts
before a request are estimates (about four characters per token); the usage a provider
reports at the end of a reply is exact. Errors from the provider become Palestra's typed
errors with the provider's status, and never carry the key.

Every provider type gets the same resilience here, not from its SDK (whose own retries are
off): a 429, a 5xx or an unreachable provider is tried again `endpoint.retries` times with
exponential backoff (0.5 s, 1 s, 2 s, ... at most 8 s) as long as nothing has streamed yet;
then the typed error goes to the caller, and the endpoint's `Outage` counts it. An
endpoint's `fixed_temperature` and `recommended_config.extra_body` apply to every request.
"""

from __future__ import annotations

import abc
import asyncio
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

from palestra.backends.base import Backend, BackendHealth
from palestra.backends.remote.endpoints import RemoteEndpoint
from palestra.backends.remote.outage import Outage, retryable
from palestra.core.errors import (
    AuthenticationError,
    BackendError,
    InvalidRequestError,
    ModelNotFoundError,
    OverloadedError,
    PalestraError,
    UnsupportedError,
)
from palestra.core.types import (
    Conversation,
    GenerationChunk,
    GenerationRequest,
    Message,
    SamplingParams,
)
from palestra.plugins import get_template
from palestra.templates.spec import ChatTemplate

CHARS_PER_TOKEN = 4
PROVIDER_CONCURRENCY = 16  # requests in flight to a provider, per served model
MAX_BACKOFF_SECONDS = 8.0


def estimate_tokens(text: str) -> int:
    return (len(text) + CHARS_PER_TOKEN - 1) // CHARS_PER_TOKEN


def conversation_tokens(conversation: Conversation) -> int:
    """An estimate of a conversation's prompt tokens (providers report the exact count)."""
    return sum(estimate_tokens(m.content) for m in conversation.messages)


def provider_error(endpoint: RemoteEndpoint, status: int | None, detail: str) -> PalestraError:
    """A typed error for a provider's failure, saying who failed and what to do."""
    where = f"{endpoint.api_type} endpoint {endpoint.name!r} ({endpoint.base_url})"
    detail = endpoint.scrub(detail)
    if status is None:
        unreachable = BackendError(f"cannot reach {where}: {detail}", code="provider_unreachable")
        unreachable.http_status = 502  # a gateway's answer: the upstream is not there
        return unreachable
    message = f"{where} answered {status}: {detail}"
    error: PalestraError
    if status in (401, 403):
        env = endpoint.api_key_env or "the endpoint's api_key_env"
        error = AuthenticationError(f"{message}. Check the API key (set via {env})")
    elif status == 404:
        error = ModelNotFoundError(f"{message}. Check model_name {endpoint.provider_model!r}")
    elif status == 429:
        error = OverloadedError(f"{message}. The provider is rate limiting; retry later")
    elif 400 <= status < 500:
        error = InvalidRequestError(message)
    else:
        error = BackendError(message)
    error.http_status = status if 400 <= status < 600 else 502
    return error


def sampling_extras(sampling: SamplingParams) -> dict[str, Any]:
    """The request's sampling fields beyond OpenAI's that differ from their defaults
    (vLLM's names: what an OpenAI-compatible vLLM server reads from the request body)."""
    extras: dict[str, Any] = {
        "top_k": sampling.top_k or None,
        "min_p": sampling.min_p or None,
        "min_tokens": sampling.min_tokens or None,
        "repetition_penalty": None
        if sampling.repetition_penalty == 1.0
        else sampling.repetition_penalty,
        "stop_token_ids": list(sampling.stop_token_ids) or None,
        "ignore_eos": sampling.ignore_eos or None,
        "include_stop_str_in_output": sampling.include_stop_str_in_output or None,
        "skip_special_tokens": None if sampling.skip_special_tokens else False,
    }
    return {name: value for name, value in extras.items() if value is not None}


class RemoteBackend(Backend):
    """A model behind a provider's chat API."""

    name = "remote"
    response_formats: tuple[str, ...] = ("text",)  # what the provider's API takes natively
    passes_extras = False  # True: vLLM's sampling extras and logit_bias go to the provider
    native_extras: frozenset[str] = frozenset()  # extras the provider's API has itself

    def __init__(self, endpoint: RemoteEndpoint):
        self.endpoint = endpoint
        self.outage = Outage()

    @property
    def model_name(self) -> str:
        return self.endpoint.name

    @property
    def template(self) -> ChatTemplate:
        # Only used to show a readable transcript; the provider applies its own template.
        return get_template("chatml")

    @property
    def context_length(self) -> int:
        return self.endpoint.context_length

    @property
    def capacity(self) -> int:
        return PROVIDER_CONCURRENCY

    def count_tokens(self, text: str) -> int:
        return estimate_tokens(text)

    @property
    def accepts_images(self) -> bool:
        return self.endpoint.vision_arena  # FastChat's mark of an endpoint that takes images

    def prepare(self, request: GenerationRequest) -> GenerationRequest:
        """The conversation as it goes to the provider (a bare prompt: one user turn)."""
        conversation = request.conversation or Conversation((Message("user", request.prompt),))
        self.check_images(conversation)
        kind = (conversation.response_format or {}).get("type", "text")
        if kind not in self.response_formats:
            raise UnsupportedError(
                f"{self.endpoint.api_type} endpoint {self.endpoint.name!r} takes no "
                f"response_format {kind!r} through Palestra",
                param="response_format",
            )
        return replace(request, conversation=conversation, prompt="", prompt_token_ids=None)

    def prompt_tokens(self, request: GenerationRequest) -> int:
        if request.conversation is None:
            return estimate_tokens(request.prompt)
        return conversation_tokens(request.conversation)

    def check(self, sampling: SamplingParams) -> None:
        if sampling.logprobs or sampling.prompt_logprobs is not None:
            raise UnsupportedError(
                f"{self.endpoint.api_type} endpoint {self.endpoint.name!r}: Palestra does not "
                "relay logprobs (nor prompt_logprobs) from API providers",
                param="logprobs" if sampling.logprobs else "prompt_logprobs",
            )
        if sampling.structure is not None:
            raise UnsupportedError(
                f"{self.endpoint.api_type} endpoint {self.endpoint.name!r} has no "
                "structured output through Palestra",
                param="response_format",
            )
        extras = [*sampling_extras(sampling), *(["logit_bias"] if sampling.logit_bias else [])]
        extras = [name for name in extras if name not in self.native_extras]
        if extras and not self.passes_extras:
            raise UnsupportedError(
                f"{self.endpoint.api_type} endpoint {self.endpoint.name!r} takes no "
                f"{', '.join(extras)}; only OpenAI-compatible endpoints pass them on",
                param=extras[0],
            )

    def max_tokens(self, sampling: SamplingParams) -> int:
        return min(sampling.max_tokens, self.endpoint.max_output_tokens)

    def sampling_for(self, sampling: SamplingParams) -> SamplingParams:
        """The request's sampling with the endpoint's fixed temperature applied."""
        fixed = self.endpoint.fixed_temperature
        return sampling if fixed is None else replace(sampling, temperature=fixed)

    async def generate(self, request: GenerationRequest) -> AsyncIterator[GenerationChunk]:
        request = self.prepare(request)
        self.check(request.sampling)
        conversation, sampling = request.conversation, self.sampling_for(request.sampling)
        assert conversation is not None  # prepare made one
        for attempt in range(self.endpoint.retries + 1):
            streamed = False
            try:
                async for chunk in self.stream(conversation, sampling):
                    streamed = True
                    yield chunk
            except PalestraError as error:
                if streamed or attempt == self.endpoint.retries or not retryable(error):
                    self.outage.failed(error)
                    raise
                await asyncio.sleep(min(0.5 * 2**attempt, MAX_BACKOFF_SECONDS))
                continue
            self.outage.answered()
            return

    @abc.abstractmethod
    def stream(
        self, conversation: Conversation, sampling: SamplingParams
    ) -> AsyncIterator[GenerationChunk]:
        """The provider's reply as deltas; the last chunk has finish_reason, usage and the
        tool calls the provider made (OpenAI's shape)."""

    async def health(self) -> BackendHealth:
        detail = {**self.endpoint.describe(), "backend": self.name}
        if self.outage.out:
            detail["outage"] = self.outage.last_error
        return BackendHealth(ok=not self.outage.out, detail=detail)
