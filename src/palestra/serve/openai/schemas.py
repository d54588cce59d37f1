"""OpenAI request bodies, validated once at the door. Unknown fields are refused (as
OpenAI does); out-of-range values name their parameter. Responses are plain dicts built by
each endpoint module."""

from __future__ import annotations

import json
import re
from functools import cached_property
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from palestra.core.errors import InvalidRequestError
from palestra.core.types import content_parts, openai_content, response_format_schema
from palestra.serve.openai.tool_calls import validate_tools
from palestra.serve.wire import SamplingWire

# Accepted only empty (or null), and said so in the OpenAI schema, so that a schema-valid
# request is never refused: Palestra does not add suffixes yet.
EmptyText = Annotated[str, Field(max_length=0)] | None
# OpenAI's logit_bias: token id (as a string key) -> bias in [-100, 100]; the schema says
# token ids are the only keys.
TOKEN_ID = r"^[0-9]+$"
BIAS_SCHEMA = {"type": "number", "minimum": -100, "maximum": 100}
LogitBias = Annotated[
    dict[Annotated[str, Field(pattern=TOKEN_ID)], Annotated[float, Field(ge=-100, le=100)]],
    WithJsonSchema(
        {"type": "object", "patternProperties": {TOKEN_ID: BIAS_SCHEMA},
         "additionalProperties": False}
    ),
]  # fmt: skip
Stop = Annotated[str, Field(min_length=1)]
NonEmpty = Annotated[str, Field(min_length=1)]


def _refuse(name: str, value: Any) -> Any:
    """A clear 400 for a value the schema does not allow, before pydantic's own message."""
    if value:
        raise ValueError(f"{name} is not supported")
    return value


class Request(BaseModel):
    model_config = ConfigDict(extra="forbid")


class StreamOptions(Request):
    include_usage: bool = False


class StructuredOutputs(Request):
    """vLLM's `structured_outputs`: one of a JSON schema, a regex, a list of choices, a
    Lark grammar, or any JSON object."""

    json_: dict[str, Any] | str | None = Field(default=None, alias="json")
    regex: str | None = None
    choice: Annotated[list[str], Field(min_length=1)] | None = None
    grammar: str | None = None
    json_object: bool | None = None
    # Accepted and ignored: llguidance decides whitespace and needs no fallback.
    whitespace_pattern: str | None = None
    disable_any_whitespace: bool | None = None
    disable_additional_properties: bool | None = None
    disable_fallback: bool | None = None


class SamplingFields(Request):
    """Parameters shared by chat and text completions."""

    model: str = Field(min_length=1)
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, gt=0, le=1)
    top_k: int | None = Field(default=None, ge=-1)  # extension, as vLLM
    n: int = Field(default=1, ge=1, le=16)
    max_tokens: int | None = Field(default=None, ge=1)
    stop: Stop | Annotated[list[Stop], Field(max_length=4)] | None = None
    seed: int | None = None
    presence_penalty: float = Field(default=0.0, ge=-2, le=2)
    frequency_penalty: float = Field(default=0.0, ge=-2, le=2)
    repetition_penalty: float = Field(default=1.0, gt=0)  # extension
    stream: bool = False
    stream_options: StreamOptions | None = None
    user: str | None = None
    logit_bias: LogitBias | None = None
    ignore_eos: bool = False  # extension
    # vLLM's sampling extras, with vLLM's meaning.
    min_p: float = Field(default=0.0, ge=0, le=1)
    min_tokens: int = Field(default=0, ge=0)
    stop_token_ids: list[Annotated[int, Field(ge=0)]] | None = None
    include_stop_str_in_output: bool = False
    skip_special_tokens: bool = True
    prompt_logprobs: int | None = Field(default=None, ge=0, le=20)
    spaces_between_special_tokens: bool = True  # accepted; fast tokenizers space themselves
    # vLLM's structured outputs, in its current shape and its older guided_* names.
    structured_outputs: StructuredOutputs | None = None
    guided_json: dict[str, Any] | str | None = None
    guided_regex: str | None = None
    guided_choice: Annotated[list[str], Field(min_length=1)] | None = None
    guided_grammar: str | None = None
    guided_decoding_backend: str | None = None  # accepted; llguidance decodes
    guided_whitespace_pattern: str | None = None  # accepted; llguidance decides

    @model_validator(mode="after")
    def _one_structure(self) -> SamplingFields:
        self.structure()  # two kinds of structured output at once: a 400
        if self.prompt_logprobs is not None and self.stream:
            raise ValueError("prompt_logprobs come with the whole response, not with stream: true")
        return self

    def structure(self) -> dict[str, str]:
        """The structured output asked for, as SamplingWire's fields ({} for none): a
        choice is a regex matching exactly one of its strings."""
        spec = self.structured_outputs or StructuredOutputs()
        asked: dict[str, Any] = {
            "json": spec.json_ if spec.json_ is not None else self.guided_json,
            "json_object": {"type": "object"} if spec.json_object else None,
            "regex": spec.regex if spec.regex is not None else self.guided_regex,
            "choice": spec.choice if spec.choice is not None else self.guided_choice,
            "grammar": spec.grammar if spec.grammar is not None else self.guided_grammar,
        }
        given = {kind: value for kind, value in asked.items() if value is not None}
        if len(given) > 1:
            raise ValueError(f"ask for one structured output, not {' and '.join(given)}")
        if not given:
            return {}
        kind, value = next(iter(given.items()))
        if kind in ("json", "json_object"):
            return {"json_schema": value if isinstance(value, str) else json.dumps(value)}
        if kind == "choice":
            return {"regex": "|".join(re.escape(choice) for choice in value)}
        return {kind: str(value)}

    @field_validator("stop")
    @classmethod
    def _stops(cls, value: str | list[str] | None) -> str | list[str] | None:
        stops = [value] if isinstance(value, str) else value or []
        if len(stops) > 4 or any(not s for s in stops):
            raise ValueError("stop takes up to 4 non-empty strings")
        return value

    def stop_list(self) -> list[str]:
        return [self.stop] if isinstance(self.stop, str) else list(self.stop or [])

    def sampling(
        self,
        *,
        max_tokens: int | None,
        logprobs: bool,
        top_logprobs: int,
        index: int,
        json_schema: str | None = None,
    ) -> SamplingWire:
        seed = None if self.seed is None else self.seed + index
        return SamplingWire(
            temperature=1.0 if self.temperature is None else self.temperature,
            top_p=1.0 if self.top_p is None else self.top_p,
            top_k=max(0, self.top_k or 0),
            max_tokens=max_tokens,
            repetition_penalty=self.repetition_penalty,
            presence_penalty=self.presence_penalty,
            frequency_penalty=self.frequency_penalty,
            seed=seed,
            stop=self.stop_list(),
            ignore_eos=self.ignore_eos,
            logprobs=logprobs,
            top_logprobs=top_logprobs,
            **{"json_schema": json_schema, **self.structure()},
            min_p=self.min_p,
            min_tokens=self.min_tokens,
            logit_bias={int(token): bias for token, bias in (self.logit_bias or {}).items()},
            stop_token_ids=list(self.stop_token_ids or []),
            include_stop_str_in_output=self.include_stop_str_in_output,
            skip_special_tokens=self.skip_special_tokens,
            prompt_logprobs=self.prompt_logprobs,
        )

    @property
    def include_usage(self) -> bool:
        return bool(self.stream_options and self.stream_options.include_usage)


class TextPart(BaseModel):
    """A text content part."""

    model_config = ConfigDict(extra="allow")

    type: Literal["text"]
    text: str


class ImageURL(BaseModel):
    url: str = Field(pattern=r"^(data:|https?://)", description="A data: URL or an http(s) URL")
    detail: Literal["auto", "low", "high"] | None = None


class ImagePart(BaseModel):
    """An image content part (user messages, models that accept images)."""

    type: Literal["image_url"]
    image_url: ImageURL


class FunctionName(BaseModel):
    name: NonEmpty


class FunctionSpec(BaseModel):
    model_config = ConfigDict(extra="allow")

    name: NonEmpty
    description: str | None = None
    parameters: dict[str, Any] | None = None


class Tool(BaseModel):
    model_config = ConfigDict(extra="allow")

    type: Literal["function"]
    function: FunctionSpec


class NamedToolChoice(BaseModel):
    type: Literal["function"]
    function: FunctionName


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="allow")

    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[TextPart | ImagePart] | None = None
    name: str | None = None

    @field_validator("content", mode="before")
    @classmethod
    def _known_parts(cls, value: Any) -> Any:
        if not isinstance(value, list):
            return value
        try:
            _, images = content_parts(value)  # the kinds the worker reads
        except InvalidRequestError as exc:
            raise ValueError(exc.message) from None
        if not all(url.startswith(("data:", "http://", "https://")) for url in images):
            raise ValueError("an image_url's url must be a data: URL or an http(s) URL")
        return value

    def text(self) -> str:
        if self.content is None or isinstance(self.content, str):
            return self.content or ""
        return "".join(part.text for part in self.content if isinstance(part, TextPart))

    @property
    def images(self) -> list[str]:
        """The image URLs of this message, in order."""
        if not isinstance(self.content, list):
            return []
        return [part.image_url.url for part in self.content if isinstance(part, ImagePart)]


class ChatCompletionRequest(SamplingFields):
    """Every parameter of OpenAI's Chat Completions reference, and vLLM's chat extras.
    Implemented, or accepted and ignored where noted (docs/api.md has the table)."""

    messages: list[ChatMessage] = Field(min_length=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    logprobs: bool = False
    top_logprobs: int | None = Field(default=None, ge=0, le=20)
    response_format: dict[str, Any] | None = None
    tools: list[Tool] | None = None
    tool_choice: Literal["none", "auto", "required"] | NamedToolChoice | None = None
    parallel_tool_calls: bool | None = None
    functions: list[FunctionSpec] | None = None  # deprecated by OpenAI: tools
    function_call: Literal["none", "auto"] | FunctionName | None = None  # ...: tool_choice
    metadata: dict[str, str] | None = None
    store: bool | None = None
    # Sent on to hosted models (local models get reasoning_effort as a template variable).
    reasoning_effort: Literal["none", "minimal", "low", "medium", "high", "xhigh"] | None = None
    service_tier: Literal["auto", "default", "flex", "scale", "priority"] | None = None
    verbosity: Literal["low", "medium", "high"] | None = None
    modalities: list[Literal["text", "audio"]] | None = None  # text only: audio is refused
    audio: dict[str, Any] | None = None  # audio output: refused (no model speaks)
    web_search_options: dict[str, Any] | None = None  # refused: no model searches the web
    # Accepted and ignored: a latency hint (no speculative decoding from a prediction yet),
    # cache routing hints (the prefix cache is automatic) and end-user ids for abuse checks.
    prediction: dict[str, Any] | None = None
    prompt_cache_key: str | None = None
    prompt_cache_retention: str | None = None
    safety_identifier: str | None = None
    # vLLM's chat extras.
    chat_template_kwargs: dict[str, Any] | None = None
    add_generation_prompt: bool = True
    continue_final_message: bool = False
    echo: bool = False  # the last message's text comes back before the reply

    @model_validator(mode="before")
    @classmethod
    def _legacy_functions(cls, data: Any) -> Any:
        """OpenAI's deprecated `functions` / `function_call` become tools / tool_choice."""
        if not isinstance(data, dict) or not (data.get("functions") or data.get("function_call")):
            return data
        if data.get("tools") or data.get("tool_choice"):
            raise ValueError("give tools/tool_choice or the deprecated functions/function_call")
        data = dict(data)
        functions = data.pop("functions", None) or []
        data["tools"] = [{"type": "function", "function": f} for f in functions] or None
        call = data.pop("function_call", None)
        if isinstance(call, dict):
            call = {"type": "function", "function": call}
        data["tool_choice"] = call
        return data

    @model_validator(mode="after")
    def _checks(self) -> ChatCompletionRequest:
        if self.top_logprobs and not self.logprobs:
            raise ValueError("top_logprobs needs logprobs: true")
        if "audio" in (self.modalities or ()) or self.audio:
            raise ValueError(f"{self.model} writes text only: audio output is not supported")
        if self.web_search_options is not None:
            raise ValueError(f"{self.model} does not search the web (web_search_options)")
        if self.continue_final_message and self.add_generation_prompt:
            raise ValueError("continue_final_message needs add_generation_prompt: false (as vLLM)")
        reserved = {"messages", "tools", "add_generation_prompt"} & set(
            self.chat_template_kwargs or {}
        )
        if reserved:
            raise ValueError(f"chat_template_kwargs may not set {', '.join(sorted(reserved))}")
        for message in self.messages:  # as OpenAI: images come from the user
            if message.images and message.role != "user":
                raise ValueError(
                    f"image_url parts belong in user messages, not {message.role!r} ones"
                )
        validate_tools(self.tool_dicts, self.tool_choice_value)
        if self.forces_tool_call and (self.response_format or {}).get("type", "text") != "text":
            raise ValueError("response_format cannot be combined with a forced tool_choice")
        formatted = (self.response_format or {}).get("type", "text") != "text"
        if self.structure() and (formatted or self.forces_tool_call):
            raise ValueError(
                "structured_outputs cannot be combined with response_format or a forced call"
            )
        self.check_response_format()
        return self

    @cached_property
    def tool_dicts(self) -> list[dict[str, Any]] | None:
        """The tools as OpenAI's JSON (what templates and providers take)."""
        return [t.model_dump(exclude_none=True) for t in self.tools] if self.tools else None

    @property
    def tool_choice_value(self) -> str | dict[str, Any] | None:
        choice = self.tool_choice
        return choice.model_dump() if isinstance(choice, NamedToolChoice) else choice

    @property
    def tools_in_play(self) -> list[dict[str, Any]] | None:
        """The tools the model may call (None when there are none or tool_choice is none)."""
        return self.tool_dicts if self.tools and self.tool_choice != "none" else None

    @property
    def forces_tool_call(self) -> bool:
        return bool(self.tools) and self.tool_choice not in (None, "none", "auto")

    def check_response_format(self) -> None:
        """Refuse a response_format no backend could follow (ValueError: a 400)."""
        try:
            response_format_schema(self.response_format)
        except InvalidRequestError as exc:
            raise ValueError(exc.message) from None

    @property
    def token_limit(self) -> int | None:
        return self.max_completion_tokens or self.max_tokens

    @property
    def echoed(self) -> str:
        """vLLM's chat `echo`: the last message's text, when the reply continues its role
        (an assistant message, as with continue_final_message); else nothing."""
        last = self.messages[-1]
        return last.text() if self.echo and last.role == "assistant" else ""

    @property
    def template_kwargs(self) -> dict[str, Any]:
        """Variables for a local model's chat template: vLLM's chat_template_kwargs, and
        reasoning_effort (what gpt-oss templates read)."""
        kwargs = dict(self.chat_template_kwargs or {})
        if self.reasoning_effort is not None:
            kwargs.setdefault("reasoning_effort", self.reasoning_effort)
        return kwargs

    @property
    def provider_options(self) -> dict[str, Any]:
        """What a hosted model's API is sent beside the conversation."""
        names = ("reasoning_effort", "service_tier", "verbosity", "parallel_tool_calls")
        return {name: getattr(self, name) for name in names if getattr(self, name) is not None}

    def message_dicts(self) -> list[dict[str, Any]]:
        """Messages for the chat template, keeping tool-call fields."""
        roles = {"developer": "system"}
        out = []
        for message in self.messages:
            item: dict[str, Any] = {
                "role": roles.get(message.role, message.role),
                "content": openai_content(message.text(), message.images),
            }
            for key in ("tool_calls", "tool_call_id", "name"):
                value = getattr(message, key, None) or (message.model_extra or {}).get(key)
                if value is not None:
                    item[key] = value
            out.append(item)
        return out


class CompletionRequest(SamplingFields):
    prompt: (
        str
        | Annotated[list[str], Field(min_length=1)]
        | Annotated[list[int], Field(min_length=1)]
        | Annotated[list[Annotated[list[int], Field(min_length=1)]], Field(min_length=1)]
    )
    max_tokens: int | None = Field(default=16, ge=1)
    logprobs: int | None = Field(default=None, ge=0, le=20)
    echo: bool = False
    suffix: EmptyText = None
    best_of: Literal[1] | None = None  # more candidates than returned: not supported

    @field_validator("suffix", mode="before")
    @classmethod
    def _unsupported(cls, value: Any, info: Any) -> Any:
        return _refuse(info.field_name, value)

    @model_validator(mode="after")
    def _checks(self) -> CompletionRequest:
        if isinstance(self.prompt, list) and not self.prompt:
            raise ValueError("prompt must not be empty")
        return self

    def prompts(self) -> list[str | list[int]]:
        """One entry per prompt: text, or token ids."""
        if isinstance(self.prompt, str):
            return [self.prompt]
        if all(isinstance(p, int) for p in self.prompt):
            return [list(self.prompt)]  # type: ignore[arg-type]
        return list(self.prompt)  # type: ignore[arg-type]


class EmbeddingRequest(Request):
    model: str = Field(min_length=1)
    input: str | Annotated[list[str], Field(min_length=1)]
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: None = None  # shortened embeddings: not supported
    user: str | None = None

    @field_validator("dimensions", mode="before")
    @classmethod
    def _unsupported(cls, value: Any) -> Any:
        if value is not None:
            raise ValueError("dimensions is not supported")
        return value

    @model_validator(mode="after")
    def _checks(self) -> EmbeddingRequest:
        if isinstance(self.input, list) and not self.input:
            raise ValueError("input must not be empty")
        return self

    def texts(self) -> list[str]:
        return [self.input] if isinstance(self.input, str) else list(self.input)


class TokenizeBody(Request):
    model: str
    prompt: str | None = None
    messages: list[ChatMessage] | None = None


class DetokenizeBody(Request):
    model: str
    tokens: list[int]
