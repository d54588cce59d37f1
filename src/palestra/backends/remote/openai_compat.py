"""`OpenAICompatibleBackend`: a model behind any OpenAI-compatible chat API (OpenAI itself,
Gemini's and Mistral's OpenAI endpoints, vLLM, Ollama, another Palestra), through the
official `openai` SDK (which also retries 429s and 5xx with backoff)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from palestra.backends.remote.base import (
    RemoteBackend,
    conversation_tokens,
    estimate_tokens,
    provider_error,
)
from palestra.backends.remote.endpoints import RemoteEndpoint
from palestra.core.types import (
    RESPONSE_FORMATS,
    Conversation,
    FinishReason,
    GenerationChunk,
    SamplingParams,
    Usage,
)


class OpenAICompatibleBackend(RemoteBackend):
    name = "openai"
    response_formats = RESPONSE_FORMATS

    def __init__(self, endpoint: RemoteEndpoint, *, max_retries: int = 2, timeout: float = 600):
        super().__init__(endpoint)
        from openai import AsyncOpenAI

        self.client = AsyncOpenAI(
            base_url=endpoint.base_url,
            api_key=endpoint.key(),
            max_retries=max_retries,
            timeout=timeout,
        )

    def _arguments(self, conversation: Conversation, sampling: SamplingParams) -> dict[str, Any]:
        arguments: dict[str, Any] = {
            "model": self.endpoint.provider_model,
            "messages": [m.to_openai() for m in conversation.messages],
            "temperature": sampling.temperature,
            "top_p": sampling.top_p,
            "max_tokens": self.max_tokens(sampling),
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        if conversation.tools:
            arguments["tools"] = list(conversation.tools)
        if conversation.tool_choice is not None:
            arguments["tool_choice"] = conversation.tool_choice
        if conversation.response_format is not None:
            arguments["response_format"] = conversation.response_format
        if sampling.stop:
            arguments["stop"] = list(sampling.stop)
        if sampling.seed is not None:
            arguments["seed"] = sampling.seed
        if sampling.presence_penalty:
            arguments["presence_penalty"] = sampling.presence_penalty
        if sampling.frequency_penalty:
            arguments["frequency_penalty"] = sampling.frequency_penalty
        return arguments

    async def stream(
        self, conversation: Conversation, sampling: SamplingParams
    ) -> AsyncIterator[GenerationChunk]:
        import openai

        finish: str | None = None
        usage: Usage | None = None
        produced: list[str] = []
        calls = ToolCallAccumulator()
        try:
            events = await self.client.chat.completions.create(
                **self._arguments(conversation, sampling)
            )
            try:
                async for event in events:
                    if event.usage is not None:
                        usage = Usage(event.usage.prompt_tokens, event.usage.completion_tokens)
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
            finally:
                await events.close()
        except openai.APIStatusError as exc:
            raise provider_error(self.endpoint, exc.status_code, _detail(exc)) from None
        except openai.APIConnectionError as exc:
            raise provider_error(self.endpoint, None, str(exc)) from None
        if usage is None:  # a server that does not report usage in streams
            usage = Usage(conversation_tokens(conversation), estimate_tokens("".join(produced)))
        made = calls.finished()
        reason: FinishReason = "tool_calls" if made else "length" if finish == "length" else "stop"
        yield GenerationChunk(text="", finish_reason=reason, usage=usage, tool_calls=made)


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
