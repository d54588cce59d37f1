"""The internal protocol between API server, controller and workers: pydantic models,
JSON over HTTP. Worker streams are newline-delimited JSON, one `ChunkMessage` (or an
`{"error": ..., "status": HTTP status}` envelope) per line, carrying deltas, never
cumulative text."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from palestra.core.types import (
    Conversation,
    GenerationChunk,
    SamplingParams,
    TokenLogprob,
    messages_from_dicts,
)


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


# ---------------------------------------------------------------- worker
class SamplingWire(Strict):
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0
    max_tokens: int | None = None  # None: fill the room left in the context
    repetition_penalty: float = 1.0
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    seed: int | None = None
    stop: list[str] = Field(default_factory=list)
    stop_token_ids: list[int] = Field(default_factory=list)
    ignore_eos: bool = False
    logprobs: bool = False
    top_logprobs: int = 0
    json_schema: str | None = None
    regex: str | None = None
    grammar: str | None = None
    min_p: float = 0.0
    min_tokens: int = 0
    logit_bias: dict[int, float] = Field(default_factory=dict)
    include_stop_str_in_output: bool = False
    skip_special_tokens: bool = True
    prompt_logprobs: int | None = None

    def to_params(self, max_tokens: int) -> SamplingParams:
        data = self.model_dump()
        data.update(
            max_tokens=max_tokens,
            stop=tuple(self.stop),
            stop_token_ids=tuple(self.stop_token_ids),
            logit_bias=tuple(sorted(self.logit_bias.items())),
        )
        return SamplingParams(**data)


class GenerateRequest(Strict):
    """Either `messages` (the worker applies the model's chat template) or `prompt`."""

    model: str
    messages: list[dict[str, Any]] | None = None
    prompt: str | None = None
    prompt_token_ids: list[int] | None = None
    sampling: SamplingWire = Field(default_factory=SamplingWire)
    tools: list[dict[str, Any]] | None = None
    tool_choice: str | dict[str, Any] | None = None
    response_format: dict[str, Any] | None = None
    template_kwargs: dict[str, Any] = Field(default_factory=dict)
    add_generation_prompt: bool = True
    continue_final_message: bool = False
    provider_options: dict[str, Any] = Field(default_factory=dict)
    request_id: str = ""

    def conversation(self) -> Conversation | None:
        """The chat to continue (None for a raw prompt); the backend renders it."""
        if self.messages is None:
            return None
        return Conversation(
            tuple(messages_from_dicts(self.messages)),
            tools=tuple(self.tools or ()),
            tool_choice=self.tool_choice,
            response_format=self.response_format,
            template_kwargs=dict(self.template_kwargs),
            add_generation_prompt=self.add_generation_prompt,
            continue_final_message=self.continue_final_message,
            provider_options=dict(self.provider_options),
        )


class LogprobWire(BaseModel):
    token: str
    token_id: int
    logprob: float
    top: list[tuple[str, float]] = Field(default_factory=list)


class ChunkMessage(BaseModel):
    text: str = ""
    token_ids: list[int] = Field(default_factory=list)
    logprobs: list[LogprobWire] = Field(default_factory=list)
    finish_reason: Literal["stop", "length", "tool_calls"] | None = None
    tool_calls: list[dict[str, Any]] = Field(default_factory=list)
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    prompt: str | None = None  # the rendered prompt, on the first chunk (for echo)
    # vLLM's JSON shape: per prompt token None or {"<token id>": {logprob, rank, decoded_token}}
    prompt_logprobs: list[dict[str, dict[str, Any]] | None] | None = None

    @classmethod
    def from_chunk(cls, chunk: GenerationChunk, prompt: str | None = None) -> ChunkMessage:
        return cls(
            text=chunk.text,
            token_ids=list(chunk.token_ids),
            logprobs=[
                LogprobWire(
                    token=lp.token, token_id=lp.token_id, logprob=lp.logprob, top=list(lp.top)
                )
                for lp in chunk.logprobs
            ],
            finish_reason=chunk.finish_reason,
            tool_calls=[dict(call) for call in chunk.tool_calls],
            prompt_tokens=chunk.usage.prompt_tokens if chunk.usage else None,
            completion_tokens=chunk.usage.completion_tokens if chunk.usage else None,
            prompt=prompt,
            prompt_logprobs=None
            if chunk.prompt_logprobs is None
            else [
                None
                if entry is None
                else {
                    str(token): {"logprob": logprob, "rank": rank, "decoded_token": text}
                    for token, (logprob, rank, text) in entry.items()
                }
                for entry in chunk.prompt_logprobs
            ],
        )

    def token_logprobs(self) -> list[TokenLogprob]:
        return [
            TokenLogprob(lp.token, lp.token_id, lp.logprob, tuple(lp.top)) for lp in self.logprobs
        ]

    @classmethod
    def joined(cls, messages: list[ChunkMessage]) -> ChunkMessage:
        """Consecutive chunks of one generation as one (for a reader that fell behind)."""
        if len(messages) == 1:
            return messages[0]
        last = messages[-1]
        return cls.model_construct(
            text="".join(m.text for m in messages),
            token_ids=[t for m in messages for t in m.token_ids],
            logprobs=[lp for m in messages for lp in m.logprobs],
            finish_reason=last.finish_reason,
            tool_calls=[call for m in messages for call in m.tool_calls],
            prompt_tokens=last.prompt_tokens,
            completion_tokens=last.completion_tokens,
            prompt=next((m.prompt for m in messages if m.prompt is not None), None),
            prompt_logprobs=next(
                (m.prompt_logprobs for m in messages if m.prompt_logprobs is not None), None
            ),
        )


class EmbedRequest(Strict):
    model: str
    input: list[str]


class EmbedResponse(BaseModel):
    embeddings: list[list[float]]
    prompt_tokens: int


class ScoreRequest(Strict):
    model: str
    pairs: list[tuple[str, str]]
    activation: bool = True  # a cross-encoder's sigmoid (or softmax); off: raw logits


class ScoreResponse(BaseModel):
    scores: list[float]
    prompt_tokens: int


class TokenizeRequest(Strict):
    model: str
    prompt: str | None = None
    messages: list[dict[str, Any]] | None = None

    def conversation(self) -> Conversation | None:
        if self.messages is None:
            return None
        return Conversation(tuple(messages_from_dicts(self.messages)))


class TokenizeResponse(BaseModel):
    tokens: list[int]
    count: int
    max_model_len: int


class DetokenizeRequest(Strict):
    model: str
    tokens: list[int]


class ModelStatus(BaseModel):
    name: str
    backend: str
    context_length: int
    template: str


class WorkerStatus(BaseModel):
    address: str
    models: list[ModelStatus]
    capacity: int
    queue_length: int


# ---------------------------------------------------------------- controller
class RegisterRequest(Strict):
    address: str
    models: list[str]
    vision_models: list[str] = Field(default_factory=list)  # those that accept images
    capacity: int = 1
    queue_length: int = 0


class HeartbeatRequest(Strict):
    address: str
    queue_length: int = 0


class HeartbeatResponse(BaseModel):
    known: bool


class DispatchRequest(Strict):
    model: str
    exclude: list[str] = Field(default_factory=list)


class DispatchResponse(BaseModel):
    address: str


class WorkerRow(BaseModel):
    address: str
    models: list[str]
    capacity: int
    queue_length: int
    last_heartbeat_age_s: float


class ModelList(BaseModel):
    models: list[str]
    vision_models: list[str] = Field(default_factory=list)
