"""`ChatModel`: any backend used as a chat function, for answering questions and judging.

It is built from what the user has: a model folder (loaded in this process), a base URL of
any OpenAI-compatible server (Palestra's own API included), a provider's API type with its
key in the environment, or a model of a FastChat endpoint file (the same file, with the
same meaning, as the workers and the web UI read). Everything goes
through the same `Backend` seam the workers use, so a judge is just another model.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from palestra.backends.base import Backend
from palestra.core.errors import InvalidRequestError
from palestra.core.types import Conversation, GenerationRequest, Message, SamplingParams


@dataclass(frozen=True)
class Completion:
    text: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str


@dataclass(frozen=True)
class ModelSource:
    """Where a model answers from; exactly one of model_path, api_base, api_type is used."""

    name: str
    model_path: str | None = None
    api_base: str | None = None
    api_type: str | None = None
    api_key_env: str | None = None
    provider_model: str | None = None  # the provider's id when it differs from `name`
    endpoint_file: Path | None = None  # FastChat's api_endpoint.json, keyed by `name`

    def describe(self) -> str:
        if self.model_path:
            return f"local model {self.model_path}"
        return f"{self.api_type or 'openai'} endpoint {self.api_base or '(default address)'}"


class ChatModel:
    """Send a conversation, get the whole reply."""

    def __init__(self, backend: Backend, name: str | None = None):
        self.backend = backend
        self.name = name or backend.model_name

    @classmethod
    def open(cls, source: ModelSource) -> ChatModel:
        if source.endpoint_file is not None:
            return cls.from_endpoint_file(source.endpoint_file, source.name)
        if source.model_path and (source.api_base or source.api_type):
            raise InvalidRequestError(
                f"{source.name}: give either a model path or an API endpoint, not both"
            )
        if source.model_path:
            from palestra.backends.hf.loading import quiet_transformers
            from palestra.plugins import create_backend

            quiet_transformers()
            backend = create_backend("hf", source.model_path)
            return cls(backend, source.name)
        if not (source.api_base or source.api_type):
            raise InvalidRequestError(
                f"{source.name}: say where the model answers: a model path, an OpenAI-"
                "compatible base URL, or an API type (anthropic, gemini, mistral, openai)"
            )
        from palestra.backends.remote import RemoteEndpoint, remote_backend

        endpoint = RemoteEndpoint(
            name=source.name,
            api_type=source.api_type or "openai",
            model_id=source.provider_model or source.name,
            api_base=source.api_base or "",
            api_key_env=source.api_key_env or "",
        )
        return cls(remote_backend(endpoint), source.name)

    @classmethod
    def from_endpoint_file(cls, file: Path, name: str) -> ChatModel:
        """The model `name` of an endpoint file."""
        from palestra.backends.remote import load_endpoint_file, remote_backend

        endpoints = {e.name: e for e in load_endpoint_file(file)}
        if name not in endpoints:
            raise InvalidRequestError(
                f"{name!r} is not in {str(file)!r}; it has {', '.join(sorted(endpoints))}"
            )
        return cls(remote_backend(endpoints[name]), name)

    async def complete(
        self, messages: Sequence[Message], *, temperature: float, max_tokens: int
    ) -> Completion:
        """The reply to `messages`. A local model's max_tokens shrinks to the room its
        context leaves; a prompt that fills the context is an InvalidRequestError."""
        draft = self.backend.prepare(GenerationRequest(conversation=Conversation(tuple(messages))))
        prompt_tokens = self.backend.prompt_tokens(draft)
        room = self.backend.context_length - prompt_tokens
        if room < 1:
            raise InvalidRequestError(
                f"{self.name}: the prompt has {prompt_tokens} tokens, the context "
                f"{self.backend.context_length}",
                code="context_length_exceeded",
            )
        sampling = SamplingParams(temperature=temperature, max_tokens=min(max_tokens, room))
        request = replace(draft, sampling=sampling)
        self.backend.check(sampling)
        pieces: list[str] = []
        finish, used_prompt, used_completion = "stop", prompt_tokens, 0
        async for chunk in self.backend.generate(request):
            pieces.append(chunk.text)
            if chunk.finish_reason:
                finish = chunk.finish_reason
            if chunk.usage is not None:
                used_prompt, used_completion = (
                    chunk.usage.prompt_tokens,
                    chunk.usage.completion_tokens,
                )
        return Completion("".join(pieces).strip(), used_prompt, used_completion, finish)

    async def close(self) -> None:
        await self.backend.close()
