"""The Responses API's request body, and its translation into a chat completion request
(what the rest of the API server runs): `instructions` become a system message, input
items become chat messages (text, images, function calls and their outputs), function
tools and `tool_choice` take chat's shape, and `text.format` becomes `response_format`.

Every parameter of OpenAI's reference is accepted: implemented, or accepted and ignored
where noted (docs/api.md has the table). What Palestra cannot do (OpenAI's hosted tools,
file inputs, background runs, server-side conversations, stored prompts) is a 400 that
says so."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    field_validator,
    model_validator,
)

from palestra.core.errors import InvalidRequestError
from palestra.serve.openai.schemas import ChatCompletionRequest

NonEmpty = Annotated[str, Field(min_length=1)]
LOGPROBS = "message.output_text.logprobs"
# Chat parameter -> the Responses parameter a user wrote, for error messages.
PARAMS = {
    "messages": "input",
    "max_completion_tokens": "max_output_tokens",
    "response_format": "text.format",
    "reasoning_effort": "reasoning.effort",
    "verbosity": "text.verbosity",
}


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Lenient(BaseModel):
    """An input item or content part: clients send back earlier outputs as the SDK gives
    them, with fields that say nothing the model reads (`status`, `annotations`, ...)."""

    model_config = ConfigDict(extra="ignore")


class InputText(Lenient):
    type: Literal["input_text", "output_text"]
    text: str


class Refusal(Lenient):
    type: Literal["refusal"]
    refusal: str


class InputImage(Lenient):
    type: Literal["input_image"]
    image_url: Annotated[str, Field(pattern=r"^(data:|https?://)")] | None = None
    file_id: str | None = None
    detail: Literal["auto", "low", "high", "original"] | None = None

    @model_validator(mode="after")
    def _url(self) -> InputImage:
        if self.file_id or not self.image_url:
            raise ValueError(
                "Palestra has no Files API: give input_image an image_url (a data: URL or an "
                "http(s) URL), not a file_id"
            )
        return self


class InputFile(Lenient):
    type: Literal["input_file"]

    @model_validator(mode="after")
    def _refuse(self) -> InputFile:
        raise ValueError("input_file is not supported: send text, or images as input_image")


Part = Annotated[InputText | Refusal | InputImage | InputFile, Field(discriminator="type")]


class MessageItem(Lenient):
    type: Literal["message"] = "message"
    id: str | None = None
    role: Literal["user", "assistant", "system", "developer"]
    content: str | list[Part]

    def chat(self) -> dict[str, Any]:
        if isinstance(self.content, str):
            return {"role": self.role, "content": self.content}
        parts: list[dict[str, Any]] = []
        for part in self.content:
            if isinstance(part, InputImage):
                parts.append({"type": "image_url", "image_url": {"url": part.image_url}})
            elif isinstance(part, Refusal):
                parts.append({"type": "text", "text": part.refusal})
            elif isinstance(part, InputText):
                parts.append({"type": "text", "text": part.text})
        return {"role": self.role, "content": parts}


class FunctionCallItem(Lenient):
    type: Literal["function_call"]
    id: str | None = None
    call_id: NonEmpty
    name: NonEmpty
    arguments: str

    def chat_call(self) -> dict[str, Any]:
        return {
            "id": self.call_id,
            "type": "function",
            "function": {"name": self.name, "arguments": self.arguments},
        }


class FunctionCallOutputItem(Lenient):
    type: Literal["function_call_output"]
    id: str | None = None
    call_id: NonEmpty
    output: str | list[Part]

    def chat(self) -> dict[str, Any]:
        output = self.output
        if not isinstance(output, str):
            output = "".join(p.text for p in output if isinstance(p, InputText))
        return {"role": "tool", "tool_call_id": self.call_id, "content": output}


class ReasoningItem(Lenient):
    """A reasoning item sent back from an earlier output: Palestra's models write their
    reasoning in the text, so there is nothing to replay."""

    type: Literal["reasoning"]
    id: str | None = None


class ItemReference(Lenient):
    type: Literal["item_reference"]
    id: NonEmpty


InputItem = Annotated[
    MessageItem | FunctionCallItem | FunctionCallOutputItem | ReasoningItem | ItemReference,
    Field(discriminator="type"),
]


class FunctionTool(Lenient):
    type: Literal["function"]
    name: NonEmpty
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None

    def chat(self) -> dict[str, Any]:
        function = self.model_dump(exclude_none=True, exclude={"type"})
        return {"type": "function", "function": function}


class FunctionChoice(Strict):
    type: Literal["function"]
    name: NonEmpty


class AllowedTools(Strict):
    type: Literal["allowed_tools"]
    mode: Literal["auto", "required"]
    tools: list[FunctionChoice] = Field(min_length=1)


class TextFormat(Strict):
    type: Literal["text", "json_schema", "json_object"]
    name: str | None = None
    schema_: dict[str, Any] | None = Field(default=None, alias="schema")
    description: str | None = None
    strict: bool | None = None

    @model_validator(mode="after")
    def _schema(self) -> TextFormat:
        if self.type == "json_schema" and (self.schema_ is None or not self.name):
            raise ValueError("a json_schema format needs a name and a schema")
        return self

    def response_format(self) -> dict[str, Any] | None:
        if self.type == "json_schema":
            spec = {"name": self.name, "schema": self.schema_, "strict": self.strict}
            spec = {key: value for key, value in spec.items() if value is not None}
            return {"type": "json_schema", "json_schema": spec}
        return None if self.type == "text" else {"type": "json_object"}


class TextConfig(Strict):
    format: TextFormat | None = None
    verbosity: Literal["low", "medium", "high"] | None = None


class Reasoning(Strict):
    effort: Literal["none", "minimal", "low", "medium", "high", "xhigh"] | None = None
    summary: Literal["auto", "concise", "detailed"] | None = None  # accepted; no summaries
    generate_summary: Literal["auto", "concise", "detailed"] | None = None  # its old name


class ResponsesRequest(Strict):
    """Every parameter of OpenAI's Responses reference. Implemented: the input, the
    sampling and tool fields, `text`, `reasoning.effort`, `store`, `previous_response_id`,
    `include` of output logprobs, `metadata`. Accepted and ignored: cache and abuse hints,
    `truncation` (a too-long conversation is a 400 either way), `max_tool_calls` (counts
    OpenAI's hosted tools), `stream_options`."""

    model: NonEmpty
    input: list[InputItem] | str | None = None
    instructions: str | None = None
    previous_response_id: NonEmpty | None = None
    store: bool = True
    stream: bool = False
    stream_options: dict[str, Any] | None = None
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, gt=0, le=1)
    max_output_tokens: int | None = Field(default=None, ge=1)
    top_logprobs: int | None = Field(default=None, ge=0, le=20)
    include: list[str] | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: Literal["none", "auto", "required"] | FunctionChoice | AllowedTools | None = None
    parallel_tool_calls: bool | None = None
    max_tool_calls: int | None = Field(default=None, ge=1)
    text: TextConfig | None = None
    reasoning: Reasoning | None = None
    metadata: dict[str, Annotated[str, Field(max_length=512)]] | None = None
    truncation: Literal["auto", "disabled"] | None = None
    service_tier: Literal["auto", "default", "flex", "scale", "priority"] | None = None
    user: str | None = None
    safety_identifier: str | None = None
    prompt_cache_key: str | None = None
    prompt_cache_retention: str | None = None
    # What needs OpenAI's own services: refused with a reason when set.
    background: bool | None = None
    conversation: str | dict[str, Any] | None = None
    prompt: dict[str, Any] | None = None

    @field_validator("input", mode="before")
    @classmethod
    def _message_type(cls, value: Any) -> Any:
        """A message may leave out its type (OpenAI's "easy input message")."""
        if not isinstance(value, list):
            return value
        return [
            {"type": "message", **item} if isinstance(item, dict) and "type" not in item else item
            for item in value
        ]

    @field_validator("tools")
    @classmethod
    def _function_tools(cls, tools: list[dict[str, Any]] | None) -> list[dict[str, Any]] | None:
        for tool in tools or []:
            if tool.get("type") != "function":
                raise ValueError(
                    f"tool type {tool.get('type')!r} is one of OpenAI's hosted tools; "
                    "Palestra runs function tools, which the client executes"
                )
            FunctionTool.model_validate(tool)
        return tools

    @model_validator(mode="after")
    def _checks(self) -> ResponsesRequest:
        if self.background:
            raise ValueError("background responses are not supported: send stream: true instead")
        if self.conversation is not None:
            raise ValueError(
                "the Conversations API is not served: chain turns with previous_response_id"
            )
        if self.prompt is not None:
            raise ValueError("stored prompts are not supported: send instructions and input")
        if self.input is None and self.previous_response_id is None:
            raise ValueError("input is required")
        return self

    def function_tools(self) -> list[FunctionTool]:
        return [FunctionTool.model_validate(tool) for tool in self.tools or []]

    def chat_tools(self) -> tuple[list[dict[str, Any]] | None, Any]:
        """Tools and tool_choice in chat's shape (allowed_tools narrows the tools)."""
        tools = self.function_tools()
        choice = self.tool_choice
        if isinstance(choice, AllowedTools):
            allowed = {tool.name for tool in choice.tools}
            unknown = allowed - {tool.name for tool in tools}
            if unknown:
                raise InvalidRequestError(
                    f"tool_choice allows {', '.join(sorted(unknown))}, not among the tools",
                    param="tool_choice",
                )
            tools = [tool for tool in tools if tool.name in allowed]
            choice = choice.mode
        if isinstance(choice, FunctionChoice):
            return [tool.chat() for tool in tools] or None, {
                "type": "function",
                "function": {"name": choice.name},
            }
        return [tool.chat() for tool in tools] or None, choice

    def input_items(self) -> list[Any]:
        if isinstance(self.input, str):
            return [MessageItem(role="user", content=self.input)]
        return list(self.input or [])

    @property
    def wants_logprobs(self) -> bool:
        return LOGPROBS in (self.include or [])

    def chat_request(self, messages: list[dict[str, Any]]) -> ChatCompletionRequest:
        """This request as a chat completion over `messages` (the conversation so far,
        this turn's input included); the instructions lead as a system message."""
        tools, choice = self.chat_tools()
        text = self.text or TextConfig()
        fields: dict[str, Any] = {
            "model": self.model,
            "messages": [
                *([{"role": "system", "content": self.instructions}] if self.instructions else []),
                *messages,
            ],
            "temperature": self.temperature,
            "top_p": self.top_p,
            "max_completion_tokens": self.max_output_tokens,
            "logprobs": self.wants_logprobs,
            "top_logprobs": self.top_logprobs if self.wants_logprobs else None,
            "tools": tools,
            "tool_choice": choice if tools else None,
            "parallel_tool_calls": self.parallel_tool_calls,
            "response_format": text.format.response_format() if text.format else None,
            "reasoning_effort": self.reasoning.effort if self.reasoning else None,
            "verbosity": text.verbosity,
            "service_tier": self.service_tier,
            "stream": self.stream,
        }
        try:
            return ChatCompletionRequest.model_validate(
                {key: value for key, value in fields.items() if value is not None}
            )
        except ValidationError as exc:
            first = exc.errors()[0]
            location = [str(part) for part in first.get("loc", ())]
            param = PARAMS.get(location[0], location[0]) if location else None
            raise InvalidRequestError(
                f"{param}: {first.get('msg', 'invalid value')}" if param else str(exc),
                param=param,
                code="invalid_value",
            ) from None


def chat_messages(items: list[Any]) -> list[dict[str, Any]]:
    """Input items as chat messages: a function call joins the assistant message before
    it (or starts one), its output becomes a tool message; reasoning items are skipped.
    `item_reference`s must be resolved first."""
    messages: list[dict[str, Any]] = []
    for item in items:
        if isinstance(item, MessageItem):
            messages.append(item.chat())
        elif isinstance(item, FunctionCallItem):
            last = messages[-1] if messages else None
            if last is None or last["role"] != "assistant":
                last = {"role": "assistant", "content": None}
                messages.append(last)
            last.setdefault("tool_calls", []).append(item.chat_call())
        elif isinstance(item, FunctionCallOutputItem):
            messages.append(item.chat())
    return messages


INPUT_ITEM: TypeAdapter[Any] = TypeAdapter(InputItem)


def parse_item(item: dict[str, Any]) -> Any:
    """A stored item (input or output, as dicts) back into its input item model."""
    return INPUT_ITEM.validate_python({"type": "message", **item})
