"""`LiteLLMBackend`: the long tail of providers through LiteLLM, the field's common library
for them (Bedrock, Groq, Together, watsonx, Ollama's native API, ... by LiteLLM's
`provider/model` ids, given as the endpoint's `model_name`).

LiteLLM takes OpenAI's request shape and gives back OpenAI's chunk shape, translating
tools, tool choices and images for each provider, so this backend is the OpenAI one's
twin. It is imported only when an endpoint of such a type is served (the import takes
seconds), with LiteLLM's model-price download turned off (`LITELLM_LOCAL_MODEL_COST_MAP`):
Palestra never downloads at run time.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from typing import Any

from palestra.backends.remote.base import RemoteBackend, provider_error, sampling_extras
from palestra.backends.remote.endpoints import RemoteEndpoint
from palestra.backends.remote.openai_compat import chunks_from_events, openai_fields, penalties
from palestra.core.errors import UnsupportedError
from palestra.core.types import (
    RESPONSE_FORMATS,
    Conversation,
    GenerationChunk,
    SamplingParams,
)


def _litellm() -> Any:
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    try:
        import litellm
    except ImportError as exc:
        raise UnsupportedError(
            "this api_type goes through LiteLLM: pip install 'palestra[litellm]'"
        ) from exc
    litellm.suppress_debug_info = True  # no "Give Feedback" banners on stdout
    return litellm


class LiteLLMBackend(RemoteBackend):
    name = "litellm"
    response_formats = RESPONSE_FORMATS
    passes_extras = True

    def __init__(self, endpoint: RemoteEndpoint):
        super().__init__(endpoint)
        self.litellm = _litellm()
        self.model = endpoint.provider_model
        self.key = endpoint.key()

    def _arguments(self, conversation: Conversation, sampling: SamplingParams) -> dict[str, Any]:
        arguments: dict[str, Any] = {
            "model": self.model,
            "messages": [m.to_openai() for m in conversation.messages],
            "temperature": sampling.temperature,
            "top_p": sampling.top_p,
            "max_tokens": self.max_tokens(sampling),
            "stream": True,
            "stream_options": {"include_usage": True},
            "num_retries": 0,  # RemoteBackend.generate retries, the same for every provider
            "timeout": self.endpoint.timeout,
        }
        if self.endpoint.base_url:
            arguments["api_base"] = self.endpoint.base_url
        if self.key != "none":
            arguments["api_key"] = self.key
        arguments.update(openai_fields(conversation, sampling))
        arguments.update(penalties(sampling))
        arguments.update(sampling_extras(sampling))
        if self.endpoint.extra_body:
            arguments["extra_body"] = self.endpoint.extra_body
        # reasoning_effort and the rest: LiteLLM translates them per provider and drops
        # what a provider does not take.
        arguments.update(conversation.provider_options)
        arguments["drop_params"] = True
        return arguments

    async def stream(
        self, conversation: Conversation, sampling: SamplingParams
    ) -> AsyncIterator[GenerationChunk]:
        import openai

        try:
            events = await self.litellm.acompletion(**self._arguments(conversation, sampling))
            async for chunk in chunks_from_events(events, conversation):
                yield chunk
        except openai.APIConnectionError as exc:  # LiteLLM's errors are OpenAI's subclasses
            raise provider_error(self.endpoint, None, _message(exc)) from None
        except openai.APIError as exc:
            status = getattr(exc, "status_code", None) or 502
            raise provider_error(self.endpoint, status, _message(exc)) from None


def _message(exc: Exception) -> str:
    """LiteLLM's message without its `litellm.XError: ProviderException - ` prefix."""
    text = str(getattr(exc, "message", exc))
    return text.split(" - ", 1)[1] if " - " in text else text
