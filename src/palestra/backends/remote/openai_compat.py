"""`OpenAICompatibleBackend`: a model behind any OpenAI-compatible chat API (OpenAI itself,
Azure OpenAI deployments, Mistral, NVIDIA, Reka, YandexGPT, vLLM, Ollama, another
Palestra), through the official `openai` SDK.

Three modes, one per FastChat api_type: `stream` (openai), `whole` (openai_no_stream: one
request for the whole reply, given back as one chunk) and `reasoning` (openai_o1: OpenAI's
reasoning models take no temperature or top_p, want `developer` instead of `system`
messages and `max_completion_tokens`, and take `reasoning_effort`; they are streamed unless
the endpoint says `"stream": false`, and a model that refuses to stream is asked again for
the whole reply, once, and from then on). An endpoint with `azure_api_version`, or with
"azure" in its model name, goes through the SDK's Azure client: deployment routes, the
`api-key` header and the `api-version` query.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, Literal

from palestra.backends.remote.base import (
    RemoteBackend,
    conversation_tokens,
    estimate_tokens,
    provider_error,
    sampling_extras,
)
from palestra.backends.remote.endpoints import AZURE_DEFAULT_API_VERSION, RemoteEndpoint
from palestra.core.errors import InvalidRequestError
from palestra.core.types import (
    RESPONSE_FORMATS,
    Conversation,
    FinishReason,
    GenerationChunk,
    SamplingParams,
    Usage,
)

Mode = Literal["stream", "whole", "reasoning"]


class OpenAICompatibleBackend(RemoteBackend):
    name = "openai"
    response_formats = RESPONSE_FORMATS
    passes_extras = True

    def __init__(self, endpoint: RemoteEndpoint, *, mode: Mode = "stream"):
        super().__init__(endpoint)
        from openai import AsyncAzureOpenAI, AsyncOpenAI

        if not endpoint.base_url:
            raise InvalidRequestError(
                f"endpoint {endpoint.name!r}: api_type {endpoint.api_type!r} needs an api_base",
                param="api_base",
            )
        self.mode = mode
        self.streams = endpoint.stream if endpoint.stream is not None else mode != "whole"
        common: dict[str, Any] = {
            "api_key": endpoint.key(),
            "max_retries": 0,  # RemoteBackend.generate retries, the same for every provider
            "timeout": endpoint.timeout,
        }
        if endpoint.folder_id:  # Yandex Cloud: the folder is the OpenAI "project"
            common["project"] = endpoint.folder_id
        if endpoint.client_name:  # Cohere's name for the calling application
            common["default_headers"] = {"X-Client-Name": endpoint.client_name}
        if endpoint.azure:
            self.client: Any = AsyncAzureOpenAI(
                azure_endpoint=endpoint.base_url,
                api_version=endpoint.azure_api_version or AZURE_DEFAULT_API_VERSION,
                **common,
            )
        else:
            self.client = AsyncOpenAI(base_url=endpoint.base_url, **common)

    @property
    def model_id(self) -> str:
        model = self.endpoint.provider_model
        if self.endpoint.folder_id and not model.startswith("gpt://"):
            return f"gpt://{self.endpoint.folder_id}/{model}"  # YandexGPT's model URI
        return model

    def _messages(self, conversation: Conversation) -> list[dict[str, Any]]:
        messages = [m.to_openai() for m in conversation.messages]
        if self.mode == "reasoning":
            for message in messages:
                if message["role"] == "system":
                    message["role"] = "developer"
        return messages

    def _arguments(self, conversation: Conversation, sampling: SamplingParams) -> dict[str, Any]:
        arguments: dict[str, Any] = {
            "model": self.model_id,
            "messages": self._messages(conversation),
            "stream": self.streams,
        }
        if self.streams:
            arguments["stream_options"] = {"include_usage": True}
        if self.mode == "reasoning":
            arguments["max_completion_tokens"] = self.max_tokens(sampling)
            if self.endpoint.reasoning_effort:
                arguments["reasoning_effort"] = self.endpoint.reasoning_effort
        else:
            arguments["temperature"] = sampling.temperature
            arguments["top_p"] = sampling.top_p
            arguments["max_tokens"] = self.max_tokens(sampling)
            arguments.update(penalties(sampling))
        arguments.update(openai_fields(conversation, sampling))
        extra_body = {**sampling_extras(sampling), **self.endpoint.extra_body}
        if extra_body:  # vLLM's extras: a vLLM (or Palestra) server reads them
            arguments["extra_body"] = extra_body
        options = dict(conversation.provider_options)
        if not conversation.tools:
            options.pop("parallel_tool_calls", None)  # OpenAI refuses it without tools
        arguments.update(options)  # the request's reasoning_effort wins over the endpoint's
        return arguments

    async def stream(
        self, conversation: Conversation, sampling: SamplingParams
    ) -> AsyncIterator[GenerationChunk]:
        import openai

        try:
            if self.streams:
                try:
                    async for chunk in self._streamed(conversation, sampling):
                        yield chunk
                    return
                except openai.BadRequestError as exc:
                    if self.mode != "reasoning" or "stream" not in _detail(exc).lower():
                        raise
                    self.streams = False  # this reasoning model answers whole replies only
            async for chunk in self._whole(conversation, sampling):
                yield chunk
        except openai.APIStatusError as exc:
            raise provider_error(self.endpoint, exc.status_code, _detail(exc)) from None
        except openai.APIConnectionError as exc:
            raise provider_error(self.endpoint, None, str(exc)) from None

    async def _streamed(
        self, conversation: Conversation, sampling: SamplingParams
    ) -> AsyncIterator[GenerationChunk]:
        events = await self.client.chat.completions.create(
            **self._arguments(conversation, sampling)
        )
        try:
            async for chunk in chunks_from_events(events, conversation):
                yield chunk
        finally:
            await events.close()

    async def _whole(
        self, conversation: Conversation, sampling: SamplingParams
    ) -> AsyncIterator[GenerationChunk]:
        arguments = self._arguments(conversation, sampling)
        arguments["stream"] = False
        arguments.pop("stream_options", None)
        reply = await self.client.chat.completions.create(**arguments)
        choice = reply.choices[0]
        text = choice.message.content or ""
        if text:
            yield GenerationChunk(text=text)
        calls = tuple(
            {
                "id": call.id,
                "type": "function",
                "function": {"name": call.function.name, "arguments": call.function.arguments},
            }
            for call in choice.message.tool_calls or ()
        )
        usage = (
            Usage(reply.usage.prompt_tokens, reply.usage.completion_tokens)
            if reply.usage is not None
            else Usage(conversation_tokens(conversation), estimate_tokens(text))
        )
        yield final_chunk(choice.finish_reason, usage, calls)


def openai_fields(conversation: Conversation, sampling: SamplingParams) -> dict[str, Any]:
    """The fields an OpenAI-shaped request (the openai SDK's, LiteLLM's) carries alike:
    tools, tool choice, response format, stops, seed and logit bias, when given."""
    fields: dict[str, Any] = {}
    if conversation.tools:
        fields["tools"] = list(conversation.tools)
    if conversation.tool_choice is not None:
        fields["tool_choice"] = conversation.tool_choice
    if conversation.response_format is not None:
        fields["response_format"] = conversation.response_format
    if sampling.stop:
        fields["stop"] = list(sampling.stop)
    if sampling.seed is not None:
        fields["seed"] = sampling.seed
    if sampling.logit_bias:
        fields["logit_bias"] = {str(token): bias for token, bias in sampling.logit_bias}
    return fields


def penalties(sampling: SamplingParams) -> dict[str, float]:
    """OpenAI's presence and frequency penalties, when set."""
    named = {"presence_penalty": sampling.presence_penalty,
             "frequency_penalty": sampling.frequency_penalty}  # fmt: skip
    return {name: value for name, value in named.items() if value}


async def chunks_from_events(
    events: AsyncIterator[Any], conversation: Conversation
) -> AsyncIterator[GenerationChunk]:
    """Streamed OpenAI-shaped chunks (the openai SDK's or LiteLLM's) as Palestra's: text
    deltas, then the last chunk with finish reason, usage (estimated when the server sends
    none) and the tool calls assembled from their deltas."""
    finish: str | None = None
    usage: Usage | None = None
    produced: list[str] = []
    calls = ToolCallAccumulator()
    async for event in events:
        reported = getattr(event, "usage", None)
        if reported is not None and (reported.prompt_tokens or reported.completion_tokens):
            usage = Usage(reported.prompt_tokens, reported.completion_tokens)
        if not event.choices:
            continue
        choice = event.choices[0]
        finish = choice.finish_reason or finish
        delta = choice.delta
        if delta is not None and delta.tool_calls:
            calls.add(delta.tool_calls)
        text = delta.content if delta else None
        if text:
            produced.append(text)
            yield GenerationChunk(text=text)
    if usage is None:  # a server that does not report usage in streams
        usage = Usage(conversation_tokens(conversation), estimate_tokens("".join(produced)))
    yield final_chunk(finish, usage, calls.finished())


def final_chunk(
    finish: str | None, usage: Usage, calls: tuple[dict[str, Any], ...]
) -> GenerationChunk:
    """The last chunk of a reply in OpenAI's terms: its finish reason, usage and calls."""
    reason: FinishReason = "tool_calls" if calls else "length" if finish == "length" else "stop"
    return GenerationChunk(text="", finish_reason=reason, usage=usage, tool_calls=calls)


class ToolCallAccumulator:
    """Streamed tool-call deltas (an id and name first, then pieces of the arguments,
    matched by index) assembled into complete calls in OpenAI's shape."""

    def __init__(self) -> None:
        self._calls: dict[int, dict[str, Any]] = {}

    def add(self, deltas: Any) -> None:
        for delta in deltas:
            call = self._calls.setdefault(
                int(delta.index or 0),
                {"id": "", "type": "function", "function": {"name": "", "arguments": ""}},
            )
            if delta.id:
                call["id"] = delta.id
            function = delta.function
            if function is not None:
                call["function"]["name"] += function.name or ""
                call["function"]["arguments"] += function.arguments or ""

    def finished(self) -> tuple[dict[str, Any], ...]:
        return tuple(self._calls[index] for index in sorted(self._calls))


def _detail(exc: Any) -> str:
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        error = body.get("error", body)
        if isinstance(error, dict) and error.get("message"):
            return str(error["message"])
    return str(getattr(exc, "message", exc))
