"""The data that crosses room boundaries: chat messages, sampling parameters, a generation
request, and the chunks a backend streams back.

These are plain dataclasses, cheap to build and easy to serialise; wire schemas for HTTP
live in the serving room and convert to and from these.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Literal

from palestra.core.errors import InvalidRequestError

Role = Literal["system", "user", "assistant", "tool"]
FinishReason = Literal["stop", "length", "tool_calls"]
ROLES: tuple[str, ...] = ("system", "user", "assistant", "tool")


@dataclass(frozen=True)
class Message:
    """One turn of a conversation."""

    role: Role
    content: str
    images: tuple[str, ...] = ()  # data: or https: URLs, for models that accept images
    tool_calls: tuple[dict[str, Any], ...] = ()  # an assistant's calls, in OpenAI's shape
    tool_call_id: str | None = None  # a tool message: the call it answers
    name: str | None = None

    def __post_init__(self) -> None:
        if self.role not in ROLES:
            raise InvalidRequestError(
                f"unknown role {self.role!r}; expected one of {', '.join(ROLES)}", param="role"
            )

    def to_dict(self) -> dict[str, Any]:
        """Role and text, plus the tool fields when present (what chat templates read)."""
        data: dict[str, Any] = {"role": self.role, "content": self.content}
        if self.tool_calls:
            data["tool_calls"] = [dict(call) for call in self.tool_calls]
        if self.tool_call_id is not None:
            data["tool_call_id"] = self.tool_call_id
        if self.name is not None:
            data["name"] = self.name
        return data

    def to_openai(self) -> dict[str, Any]:
        """OpenAI's chat message: text, or content parts with `image_url`s."""
        data = self.to_dict()
        data["content"] = openai_content(self.content, self.images)
        if self.tool_calls and not self.content:
            data["content"] = None
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Message:
        """From OpenAI's shape: content as text, or as text and `image_url` parts."""
        try:
            text, images = content_parts(data.get("content"))
            return cls(
                role=data["role"],
                content=text,
                images=images,
                tool_calls=tuple(data.get("tool_calls") or ()),
                tool_call_id=data.get("tool_call_id"),
                name=data.get("name"),
            )
        except KeyError as exc:
            raise InvalidRequestError(f"message without {exc.args[0]!r}: {data!r}") from exc


def openai_content(text: str, images: tuple[str, ...] | list[str] = ()) -> Any:
    """OpenAI's message content: the text, or with images a text part and `image_url`
    parts (what `content_parts` reads back)."""
    if not images:
        return text
    parts: list[dict[str, Any]] = [{"type": "text", "text": text}]
    return parts + [{"type": "image_url", "image_url": {"url": url}} for url in images]


def content_parts(content: Any) -> tuple[str, tuple[str, ...]]:
    """(text, image URLs) of OpenAI message content: a string, or a list of `text` and
    `image_url` parts (text parts joined in order). Other part kinds are refused."""
    if content is None or isinstance(content, str):
        return content or "", ()
    if not isinstance(content, list):
        return str(content), ()
    texts: list[str] = []
    images: list[str] = []
    for part in content:
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text":
            texts.append(str(part.get("text") or ""))
        elif kind == "image_url":
            image = part.get("image_url")
            url = image.get("url") if isinstance(image, dict) else image
            if not isinstance(url, str) or not url:
                raise InvalidRequestError("an image_url part needs a url", param="messages")
            images.append(url)
        else:
            raise InvalidRequestError(
                f"content part of type {kind!r} is not supported; send text and image_url parts",
                param="messages",
            )
    return "".join(texts), tuple(images)


def messages_from_dicts(items: list[dict[str, Any]]) -> list[Message]:
    return [Message.from_dict(item) for item in items]


@dataclass(frozen=True)
class SamplingParams:
    """How to pick tokens. temperature 0 means greedy decoding.

    Defaults follow OpenAI's: temperature 1, top_p 1, no top_k, no penalties.
    """

    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0  # 0 or negative: no top-k filter
    max_tokens: int = 256
    repetition_penalty: float = 1.0
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    seed: int | None = None
    stop: tuple[str, ...] = ()
    stop_token_ids: tuple[int, ...] = ()
    ignore_eos: bool = False
    logprobs: bool = False
    top_logprobs: int = 0
    json_schema: str | None = None  # structured output: the reply must match this schema
    regex: str | None = None  # ...or this regular expression (vLLM's regex and choice)
    grammar: str | None = None  # ...or this Lark grammar (vLLM's grammar)
    # vLLM's extras, with vLLM's meaning:
    min_p: float = 0.0  # drop tokens less likely than min_p x the likeliest one
    min_tokens: int = 0  # no stop (token or string) before this many tokens
    logit_bias: tuple[tuple[int, float], ...] = ()  # (token id, bias), as OpenAI's
    include_stop_str_in_output: bool = False
    skip_special_tokens: bool = True
    prompt_logprobs: int | None = None  # each prompt token's logprob, and this many others

    def __post_init__(self) -> None:
        checks: list[tuple[bool, str, str]] = [
            (self.temperature >= 0, "temperature", "temperature must be >= 0"),
            (0 < self.top_p <= 1, "top_p", "top_p must be in (0, 1]"),
            (self.max_tokens >= 1, "max_tokens", "max_tokens must be >= 1"),
            (self.repetition_penalty > 0, "repetition_penalty", "repetition_penalty must be > 0"),
            (-2 <= self.presence_penalty <= 2, "presence_penalty", "presence_penalty in [-2, 2]"),
            (
                -2 <= self.frequency_penalty <= 2,
                "frequency_penalty",
                "frequency_penalty in [-2, 2]",
            ),
            (0 <= self.top_logprobs <= 20, "top_logprobs", "top_logprobs must be in [0, 20]"),
            (0 <= self.min_p <= 1, "min_p", "min_p must be in [0, 1]"),
            (
                self.prompt_logprobs is None or 0 <= self.prompt_logprobs <= 20,
                "prompt_logprobs",
                "prompt_logprobs must be in [0, 20]",
            ),
            (self.min_tokens >= 0, "min_tokens", "min_tokens must be >= 0"),
            (
                all(-100 <= bias <= 100 for _, bias in self.logit_bias),
                "logit_bias",
                "logit_bias values must be in [-100, 100]",
            ),
        ]
        for ok, param, message in checks:
            if not ok:
                raise InvalidRequestError(message, param=param)

    @property
    def greedy(self) -> bool:
        return self.temperature < 1e-5

    @property
    def structure(self) -> tuple[str, str] | None:
        """The structured output asked for: ("json", schema), ("regex", pattern) or
        ("grammar", lark); None for free text."""
        for kind, text in (("json", self.json_schema), ("regex", self.regex),
                           ("grammar", self.grammar)):  # fmt: skip
            if text is not None:
                return kind, text
        return None


RESPONSE_FORMATS = ("text", "json_object", "json_schema")


def response_format_schema(response_format: dict[str, Any] | None) -> str | None:
    """The JSON schema OpenAI's `response_format` asks the reply to match (None: free
    text); a malformed one is an InvalidRequestError."""
    kind = (response_format or {}).get("type", "text")
    if kind not in RESPONSE_FORMATS:
        raise InvalidRequestError(
            f"response_format type {kind!r} is not one of {', '.join(RESPONSE_FORMATS)}",
            param="response_format",
        )
    if kind == "json_object":
        return json.dumps({"type": "object"})
    if kind == "json_schema":
        spec = (response_format or {}).get("json_schema")
        if not isinstance(spec, dict) or not isinstance(spec.get("schema"), dict):
            raise InvalidRequestError(
                "response_format json_schema needs {'json_schema': {'name': ..., 'schema': {...}}}",
                param="response_format",
            )
        return json.dumps(spec["schema"])
    return None


@dataclass(frozen=True)
class Conversation:
    """A chat to continue: the messages, the tools the model may call and how
    (`tool_choice` as OpenAI's: "auto", "none", "required" or a named function), and the
    response format asked for. Local backends render it with the model's chat template;
    remote ones send it to their provider as it is."""

    messages: tuple[Message, ...]
    tools: tuple[dict[str, Any], ...] = ()
    tool_choice: str | dict[str, Any] | None = None
    response_format: dict[str, Any] | None = None
    # Extra variables for a local model's chat template (vLLM's chat_template_kwargs, e.g.
    # {"enable_thinking": false}); end the prompt with the assistant's opening (the
    # generation prompt) or continue the last assistant message instead.
    template_kwargs: dict[str, Any] = field(default_factory=dict)
    add_generation_prompt: bool = True
    continue_final_message: bool = False
    # Options only a hosted provider's API reads (reasoning_effort, service_tier, ...).
    provider_options: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.messages:
            raise InvalidRequestError("messages must not be empty", param="messages")

    @property
    def tools_in_play(self) -> list[dict[str, Any]]:
        """The tools the model may call (none when tool_choice is "none")."""
        return list(self.tools) if self.tool_choice != "none" else []


@dataclass(frozen=True)
class Pacing:
    """How a stream's tokens gather into frames (backends/pacing.py): a frame goes out once
    it holds `tokens` tokens and `seconds` have passed since the last one (or the request's
    start); the first text and the end go out at once."""

    tokens: int = 1
    seconds: float = 0.0

    @property
    def every_token(self) -> bool:
        return self.tokens <= 1 and self.seconds <= 0


EVERY_TOKEN = Pacing()


@dataclass(frozen=True)
class GenerationRequest:
    """What to continue, a raw `prompt` (text, or token ids when already tokenised) or a
    `conversation` (the backend renders it), and how."""

    prompt: str = ""
    sampling: SamplingParams = field(default_factory=SamplingParams)
    prompt_token_ids: tuple[int, ...] | None = None
    request_id: str = ""
    adapter: str | None = None  # PEFT adapter name, for backends that host several
    conversation: Conversation | None = None
    pacing: Pacing = EVERY_TOKEN  # how chunks gather into frames before they are handed on


@dataclass(frozen=True)
class TokenLogprob:
    """The log-probability of one generated token and, if asked, its strongest rivals."""

    token: str
    token_id: int
    logprob: float
    top: tuple[tuple[str, float], ...] = ()


@dataclass(frozen=True)
class Usage:
    prompt_tokens: int
    completion_tokens: int

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


# vLLM's prompt logprobs: one entry per prompt token, None for the first (nothing comes
# before it); else token id -> (logprob, rank, decoded token), for the prompt's own token
# and the likeliest others.
PromptLogprobs = tuple[dict[int, tuple[float, int, str]] | None, ...]


@dataclass(frozen=True)
class GenerationChunk:
    """A piece of a streamed generation.

    `text` is the new text since the previous chunk (a delta, never cumulative). The last
    chunk carries `finish_reason` and `usage`.
    """

    text: str
    token_ids: tuple[int, ...] = ()
    logprobs: tuple[TokenLogprob, ...] = ()
    finish_reason: FinishReason | None = None
    usage: Usage | None = None
    # Tool calls a provider returned natively (OpenAI's shape: id, type, function{name,
    # arguments}); local models write calls as text, which the API server parses.
    tool_calls: tuple[dict[str, Any], ...] = ()
    prompt_logprobs: PromptLogprobs | None = None  # on the first chunk, when asked for


def join_chunks(chunks: list[GenerationChunk]) -> GenerationChunk:
    """Several consecutive chunks as one (for a consumer that fell behind the producer)."""
    if len(chunks) == 1:
        return chunks[0]
    last = chunks[-1]
    return GenerationChunk(
        "".join(c.text for c in chunks),
        tuple(t for c in chunks for t in c.token_ids),
        tuple(lp for c in chunks for lp in c.logprobs),
        finish_reason=last.finish_reason,
        usage=last.usage,
        tool_calls=tuple(call for c in chunks for call in c.tool_calls),
        prompt_logprobs=next(
            (c.prompt_logprobs for c in chunks if c.prompt_logprobs is not None), None
        ),
    )
