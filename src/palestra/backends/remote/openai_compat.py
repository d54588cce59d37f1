"""`OpenAICompatibleBackend`: a model behind any OpenAI-compatible chat API (OpenAI itself,
Gemini's and Mistral's OpenAI endpoints, vLLM, Ollama, another Palestra), through the
official `openai` SDK (which also retries 429s and 5xx with backoff)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from palestra.backends.remote.base import RemoteBackend, estimate_tokens, provider_error
from palestra.backends.remote.endpoints import RemoteEndpoint
from palestra.core.types import GenerationChunk, Message, SamplingParams, Usage


class OpenAICompatibleBackend(RemoteBackend):
    name = "openai"

    def __init__(self, endpoint: RemoteEndpoint, *, max_retries: int = 2, timeout: float = 600):
        super().__init__(endpoint)
        from openai import AsyncOpenAI

        self.client = AsyncOpenAI(
            base_url=endpoint.base_url,
            api_key=endpoint.key(),
            max_retries=max_retries,
            timeout=timeout,
        )

    def _arguments(self, messages: list[Message], sampling: SamplingParams) -> dict[str, Any]:
        arguments: dict[str, Any] = {
            "model": self.endpoint.provider_model,
            "messages": [m.to_openai() for m in messages],
            "temperature": sampling.temperature,
            "top_p": sampling.top_p,
            "max_tokens": self.max_tokens(sampling),
            "stream": True,
            "stream_options": {"include_usage": True},
        }
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
        self, messages: list[Message], sampling: SamplingParams
    ) -> AsyncIterator[GenerationChunk]:
        import openai

        finish: str | None = None
        usage: Usage | None = None
        produced: list[str] = []
        try:
            events = await self.client.chat.completions.create(
                **self._arguments(messages, sampling)
            )
            try:
                async for event in events:
                    if event.usage is not None:
                        usage = Usage(event.usage.prompt_tokens, event.usage.completion_tokens)
                    if not event.choices:
                        continue
                    choice = event.choices[0]
                    finish = choice.finish_reason or finish
                    text = choice.delta.content if choice.delta else None
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
            prompt = sum(estimate_tokens(m.content) for m in messages)
            usage = Usage(prompt, estimate_tokens("".join(produced)))
        yield GenerationChunk(
            text="", finish_reason="length" if finish == "length" else "stop", usage=usage
        )


def _detail(exc: Any) -> str:
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        error = body.get("error", body)
        if isinstance(error, dict) and error.get("message"):
            return str(error["message"])
    return str(getattr(exc, "message", exc))
