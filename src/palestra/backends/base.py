"""`Backend`: the interface every inference engine implements.

A backend owns a loaded model (or a provider's model). It does not know about HTTP,
controllers or chat sessions. It takes a `GenerationRequest` holding a conversation
(messages, tools, images, response format) or a raw prompt, and streams
`GenerationChunk`s back; it also tokenizes, embeds, and says whether it is healthy.

Rendering a conversation is the backend's job, never its caller's: local backends render
it with the model's chat template (`prepare`), putting tools in front of the model and
turning a forced tool call or a response format into the schema constrained decoding
follows; remote backends send the conversation to their provider as it is.
"""

from __future__ import annotations

import abc
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from palestra.core.errors import InvalidRequestError, UnsupportedError
from palestra.core.types import (
    Conversation,
    GenerationChunk,
    GenerationRequest,
    Message,
    SamplingParams,
    response_format_schema,
)
from palestra.templates.render import render_continuation, render_text
from palestra.templates.spec import ChatTemplate
from palestra.templates.tools import forced_call_schema, normalise_tool_messages, with_tools


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

    @property
    def capacity(self) -> int:
        """Requests this backend works on at once (a batch, contexts, provider calls)."""
        return 1

    @property
    def accepts_images(self) -> bool:
        """Whether user messages may carry images (a vision model)."""
        return False

    async def hold(self) -> Callable[[], None]:
        """Have the model in memory for one request until the returned release is called
        (a worker's --keep-alive may have let it go; most backends are always loaded)."""
        return _nothing

    def check_images(self, conversation: Conversation) -> None:
        """Refuse a conversation with images when this model takes none (a 400 naming it)."""
        if not self.accepts_images and any(m.images for m in conversation.messages):
            raise InvalidRequestError(
                f"model {self.model_name!r} does not accept images; send text only, or "
                "choose a vision model",
                param="messages",
            )

    @abc.abstractmethod
    def generate(self, request: GenerationRequest) -> AsyncIterator[GenerationChunk]:
        """Stream the continuation of the request's conversation or prompt (call `prepare`
        first). Chunks carry text deltas; the last one carries finish_reason and usage.
        Closing the iterator stops generation."""

    # ------------------------------------------------------------- conversations
    def prepare(self, request: GenerationRequest) -> GenerationRequest:
        """The request as this backend runs it: a local backend renders the conversation
        into `prompt` with its chat template and folds a forced tool call or a response
        format into the sampling's JSON schema."""
        conversation = request.conversation
        if conversation is None or request.prompt or request.prompt_token_ids:
            return request
        self.check_images(conversation)
        sampling = request.sampling
        schema = conversation_schema(conversation)
        if schema is not None and sampling.json_schema is None:
            sampling = replace(sampling, json_schema=schema)
        return replace(request, prompt=self.render(conversation), sampling=sampling)

    def render(self, conversation: Conversation) -> str:
        """The prompt text that makes the model write the next assistant reply (or, with
        `continue_final_message`, the rest of the last one); the conversation's template
        kwargs reach the template as variables."""
        messages = normalise_tool_messages(self.template_messages(conversation))
        rendered, variables = with_tools(self.template, messages, conversation.tools_in_play)
        variables = {**conversation.template_kwargs, **variables}
        if conversation.continue_final_message:
            return render_continuation(self.template, rendered, **variables)
        return render_text(
            self.template,
            rendered,
            add_generation_prompt=conversation.add_generation_prompt,
            **variables,
        )

    def template_messages(self, conversation: Conversation) -> list[dict[str, Any]]:
        """The messages as the chat template reads them (text content)."""
        return [m.to_dict() for m in conversation.messages]

    def chat_prompt(self, messages: Sequence[Message | dict[str, Any]]) -> str:
        """The prompt for a plain list of messages (no tools); for display and debugging."""
        turns = tuple(m if isinstance(m, Message) else Message.from_dict(m) for m in messages)
        return self.render(Conversation(turns))

    def prompt_tokens(self, request: GenerationRequest) -> int:
        """How many tokens the prepared request's prompt takes."""
        if request.prompt_token_ids:
            return len(request.prompt_token_ids)
        return self.count_tokens(request.prompt)

    # ------------------------------------------------------------------ tokens
    def tokenize(self, text: str) -> list[int]:
        raise UnsupportedError(f"backend {self.name!r} for {self.model_name} does not tokenize")

    def detokenize(self, token_ids: Sequence[int]) -> str:
        raise UnsupportedError(f"backend {self.name!r} for {self.model_name} does not tokenize")

    def count_tokens(self, text: str) -> int:
        return len(self.tokenize(text))

    # -------------------------------------------------------------------- rest
    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        raise UnsupportedError(f"backend {self.name!r} for {self.model_name} cannot embed")

    async def score(self, pairs: Sequence[tuple[str, str]], activation: bool = True) -> list[float]:
        """How well each pair's second text answers its first (a cross-encoder's score,
        or an embedding model's cosine similarity)."""
        raise UnsupportedError(
            f"{self.model_name} cannot score text pairs: /v1/score and /v1/rerank need an "
            "embedding or cross-encoder (reranker) model"
        )

    def check(self, sampling: SamplingParams) -> None:
        """Refuse, before any work, what this backend cannot do (a bad schema, say)."""
        if sampling.structure is not None:
            raise UnsupportedError(f"backend {self.name!r} has no structured output")
        if sampling.prompt_logprobs is not None:
            raise UnsupportedError(
                f"backend {self.name!r} does not return prompt_logprobs", param="prompt_logprobs"
            )

    async def health(self) -> BackendHealth:
        return BackendHealth(ok=True, detail={"model": self.model_name, "backend": self.name})

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Release the model's resources."""


def _nothing() -> None:
    return None


def conversation_schema(conversation: Conversation) -> str | None:
    """The JSON schema a local model's reply must match: a forced tool call, or the
    response format asked for (None: free text)."""
    tools = conversation.tools_in_play
    if tools and conversation.tool_choice not in (None, "auto"):
        return forced_call_schema(tools, conversation.tool_choice)
    return response_format_schema(conversation.response_format)
