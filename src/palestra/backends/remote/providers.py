"""Provider types: what an endpoint's `api_type` means, and the built-in ones.

A `ProviderType` says how to build the backend for an endpoint of that type, where the
provider answers by default, which environment variable holds its key, and which extra
endpoint-file fields it reads. Plugins add types through `register_providers()` (see
`palestra.plugins`); the built-ins below register the same way. `remote_backend(endpoint)`
builds the backend of an endpoint's type.

Every `api_type` of FastChat's provider module is here. Those whose API still exists are
served: OpenAI and every OpenAI-compatible chat API through the official `openai` SDK
(Azure deployments through its Azure client), Anthropic through the `anthropic` SDK (on
Vertex AI too), Gemini through `google-genai` (on Vertex AI too), Mistral, NVIDIA, Reka,
YandexGPT and Cohere through their OpenAI-compatible APIs, and the long tail through
LiteLLM (`litellm`: Bedrock, Groq, Ollama's native API, ... by LiteLLM's model ids). Types
whose service was shut down or was never public are `retired`, with what to use instead.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from palestra.backends.remote.base import RemoteBackend
    from palestra.backends.remote.endpoints import RemoteEndpoint
    from palestra.backends.remote.openai_compat import Mode

BackendMaker = Callable[["RemoteEndpoint"], "RemoteBackend"]


@dataclass(frozen=True)
class ProviderType:
    name: str  # the endpoint file's api_type
    create: BackendMaker | None  # None for a retired type
    summary: str = ""
    default_base: str = ""
    key_env: str = ""  # the environment variable read when the file gives no key
    key_required: bool = True  # False: a placeholder key is sent (servers without keys)
    fields: frozenset[str] = frozenset()  # endpoint-file fields of this type's own
    retired: str = ""  # why the type no longer works, and what to use instead


def _openai(mode: Mode) -> BackendMaker:
    def create(endpoint: RemoteEndpoint) -> RemoteBackend:
        from palestra.backends.remote.openai_compat import OpenAICompatibleBackend

        return OpenAICompatibleBackend(endpoint, mode=mode)

    return create


def _anthropic(vertex: bool) -> BackendMaker:
    def create(endpoint: RemoteEndpoint) -> RemoteBackend:
        from palestra.backends.remote.anthropic import AnthropicBackend

        return AnthropicBackend(endpoint, vertex=vertex)

    return create


def _gemini(stream: bool, vertex: bool) -> BackendMaker:
    def create(endpoint: RemoteEndpoint) -> RemoteBackend:
        from palestra.backends.remote.gemini import GeminiBackend

        return GeminiBackend(endpoint, stream=stream, vertex=vertex)

    return create


def _litellm(endpoint: RemoteEndpoint) -> RemoteBackend:
    from palestra.backends.remote.litellm import LiteLLMBackend

    return LiteLLMBackend(endpoint)


OPENAI = "https://api.openai.com/v1"


def _retired(name: str, why: str) -> ProviderType:
    return ProviderType(name, None, summary=why, retired=f"api_type {name!r}: {why}")


BUILTIN_PROVIDERS: tuple[ProviderType, ...] = (
    ProviderType(
        "openai", _openai("stream"),
        "OpenAI or any OpenAI-compatible chat API (vLLM, Ollama, Palestra, OpenRouter, "
        "Together, Groq, ...); Azure OpenAI with azure_api_version",
        OPENAI, "OPENAI_API_KEY", key_required=False,
    ),
    ProviderType(
        "openai_no_stream", _openai("whole"),
        "an OpenAI-compatible API asked for whole replies (no streaming)",
        OPENAI, "OPENAI_API_KEY", key_required=False,
    ),
    ProviderType(
        "openai_o1", _openai("reasoning"),
        "an OpenAI reasoning model (o1, o3, o4-mini, gpt-5): no temperature or top_p, "
        "developer messages, max_completion_tokens, reasoning_effort",
        OPENAI, "OPENAI_API_KEY",
    ),
    ProviderType(
        "anthropic", _anthropic(vertex=False), "Claude through Anthropic's Messages API",
        "https://api.anthropic.com", "ANTHROPIC_API_KEY",
    ),
    ProviderType(
        "anthropic_message", _anthropic(vertex=False),
        "Claude through Anthropic's Messages API (FastChat's newer name)",
        "https://api.anthropic.com", "ANTHROPIC_API_KEY",
    ),
    ProviderType(
        "anthropic_message_vertex", _anthropic(vertex=True),
        "Claude on Google Vertex AI (project_id, region; api_key is an access token)",
        "", "VERTEX_ACCESS_TOKEN",
    ),
    ProviderType(
        "gemini", _gemini(stream=True, vertex=False), "Gemini through google-genai",
        "https://generativelanguage.googleapis.com", "GEMINI_API_KEY",
    ),
    ProviderType(
        "gemini_no_stream", _gemini(stream=False, vertex=False),
        "Gemini through google-genai, whole replies",
        "https://generativelanguage.googleapis.com", "GEMINI_API_KEY",
    ),
    ProviderType(
        "vertex", _gemini(stream=True, vertex=True),
        "Gemini on Google Vertex AI through google-genai (project_id, region)",
        "", "GOOGLE_API_KEY", key_required=False,
    ),
    ProviderType(
        "mistral", _openai("stream"), "Mistral's chat API (OpenAI-compatible)",
        "https://api.mistral.ai/v1", "MISTRAL_API_KEY",
    ),
    ProviderType(
        "nvidia", _openai("stream"), "NVIDIA NIM / build.nvidia.com (OpenAI-compatible)",
        "https://integrate.api.nvidia.com/v1", "NVIDIA_API_KEY",
    ),
    ProviderType(
        "reka", _openai("stream"), "Reka's chat API (OpenAI-compatible)",
        "https://api.reka.ai/v1", "REKA_API_KEY",
    ),
    ProviderType(
        "yandexgpt", _openai("stream"),
        "YandexGPT through Yandex Cloud's OpenAI-compatible API (folder_id)",
        "https://llm.api.cloud.yandex.net/v1", "YANDEX_API_KEY",
    ),
    ProviderType(
        "ai2", _openai("stream"),
        "an Ai2-hosted model behind an OpenAI-compatible API (api_base required)",
        "", "AI2_API_KEY",
    ),
    ProviderType(
        "cohere", _openai("stream"), "Cohere through its OpenAI compatibility API",
        "https://api.cohere.ai/compatibility/v1", "COHERE_API_KEY",
    ),
    ProviderType(
        "litellm", _litellm,
        "any provider LiteLLM knows: model_name is LiteLLM's 'provider/model' "
        "(bedrock/..., groq/..., together_ai/..., ...)",
        "", "", key_required=False,
    ),
    _retired(
        "openai_assistant",
        "OpenAI shut the Assistants API down on 2026-08-26; use api_type 'openai' "
        "(or its Responses API through a plugin)",
    ),
    _retired(
        "bard", "Google shut the PaLM/Bard API down; use api_type 'gemini'"
    ),
    _retired("column", "a private arena endpoint of LMSYS, never public"),
    _retired("metagen", "a private arena endpoint of LMSYS, never public"),
    _retired("bailing", "a private arena endpoint of LMSYS, never public"),
    _retired("p2l", "LMSYS's prompt-to-leaderboard router, served by LMSYS only"),
)  # fmt: skip


def remote_backend(endpoint: RemoteEndpoint) -> RemoteBackend:
    """The backend of the endpoint's provider type."""
    from palestra.core.errors import UnsupportedError

    provider = endpoint.provider
    if provider.create is None:
        raise UnsupportedError(provider.retired, param="api_type")
    return provider.create(endpoint)
