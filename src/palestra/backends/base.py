"""`Backend`: the interface every inference engine implements.

A backend owns a loaded model and its tokenizer. It does not know about HTTP, controllers
or chat sessions; it turns a `GenerationRequest` (a prompt) into a stream of
`GenerationChunk`s, embeds texts, counts tokens, and says whether it is healthy. It also
exposes the chat template it resolved, so callers render prompts the way the model expects.
"""

from __future__ import annotations

import abc
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from palestra.core.errors import UnsupportedError
from palestra.core.types import GenerationChunk, GenerationRequest, Message, SamplingParams
from palestra.templates.render import render_prompt
from palestra.templates.spec import ChatTemplate


@dataclass(frozen=True)
class BackendHealth:
    ok: bool
    detail: dict[str, Any] = field(default_factory=dict)


class Backend(abc.ABC):
    """One loaded model behind one engine."""

    name: str = "backend"

    @property
    @abc.abstractmethod
    def model_name(self) -> str: ...

    @property
    @abc.abstractmethod
    def template(self) -> ChatTemplate:
        """The chat template this model uses (resolved when the backend was built)."""

    @property
    def context_length(self) -> int:
        return 2048

    @abc.abstractmethod
    def generate(self, request: GenerationRequest) -> AsyncIterator[GenerationChunk]:
        """Stream the continuation of `request.prompt`. Chunks carry text deltas; the last
        one carries finish_reason and usage. Closing the iterator stops generation."""

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        raise UnsupportedError(f"backend {self.name!r} for {self.model_name} cannot embed")

    @abc.abstractmethod
    def count_tokens(self, text: str) -> int: ...

    def check(self, sampling: SamplingParams) -> None:
        """Refuse, before any work, what this backend cannot do (a bad schema, say)."""
        if sampling.json_schema is not None:
            raise UnsupportedError(f"backend {self.name!r} has no structured output")

    async def health(self) -> BackendHealth:
        return BackendHealth(ok=True, detail={"model": self.model_name, "backend": self.name})

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Release the model's resources."""

    def chat_prompt(self, messages: Sequence[Message | dict[str, Any]], **variables: Any) -> str:
        """The prompt text that makes the model write the next assistant reply
        (`variables` reach the template: `tools=[...]`, for instance)."""
        return render_prompt(self.template, messages, **variables)
