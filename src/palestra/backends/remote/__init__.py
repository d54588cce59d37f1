"""Backends for models hosted by API providers (OpenAI-compatible servers, Anthropic,
Gemini, Mistral): `remote_backend(endpoint)` builds the right one for an endpoint."""

from __future__ import annotations

from palestra.backends.remote.base import RemoteBackend
from palestra.backends.remote.endpoints import RemoteEndpoint, Secret, load_endpoint_file


def remote_backend(
    endpoint: RemoteEndpoint, *, max_retries: int = 2, timeout: float = 600
) -> RemoteBackend:
    """Gemini and Mistral are reached through their OpenAI-compatible chat endpoints."""
    if endpoint.api_type == "anthropic":
        from palestra.backends.remote.anthropic import AnthropicBackend

        return AnthropicBackend(endpoint, max_retries=max_retries, timeout=timeout)
    from palestra.backends.remote.openai_compat import OpenAICompatibleBackend

    return OpenAICompatibleBackend(endpoint, max_retries=max_retries, timeout=timeout)


__all__ = ["RemoteBackend", "RemoteEndpoint", "Secret", "load_endpoint_file", "remote_backend"]
