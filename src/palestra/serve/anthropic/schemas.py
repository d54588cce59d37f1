"""The Messages API's request body and error shape, and the translation of a request into
Palestra's conversation in OpenAI's message shape (what the workers read): system text,
user and assistant turns, images, tools, tool uses and tool results."""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from palestra.core.errors import PalestraError

Text = Annotated[str, Field(min_length=1)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Lenient(BaseModel):
    """A content block: clients send back the blocks of earlier replies as the SDK gives
    them, with fields newer than this server (`caller`, `citations`, ...); those are left
    out, as they say nothing the model reads."""

    model_config = ConfigDict(extra="ignore")


class TextBlock(Lenient):
    type: Literal["text"]
    text: str
    cache_control: dict[str, Any] | None = None  # accepted; the prefix cache is automatic
    citations: list[dict[str, Any]] | None = None  # accepted; Palestra cites nothing


class Base64Source(Lenient):
    type: Literal["base64"]
    media_type: Literal["image/jpeg", "image/png", "image/gif", "image/webp"]
    data: Text


class UrlSource(Lenient):
    type: Literal["url"]
    url: Annotated[str, Field(pattern=r"^https?://")]


class ImageBlock(Lenient):
    type: Literal["image"]
    source: Base64Source | UrlSource
    cache_control: dict[str, Any] | None = None

    def url(self) -> str:
        source = self.source
        if isinstance(source, Base64Source):
            return f"data:{source.media_type};base64,{source.data}"
        return source.url


class ToolUseBlock(Lenient):
    type: Literal["tool_use"]
    id: Text
    name: Text
    input: dict[str, Any]
    cache_control: dict[str, Any] | None = None


class ToolResultBlock(Lenient):
    type: Literal["tool_result"]
    tool_use_id: Text
    content: str | list[TextBlock] = ""
    is_error: bool | None = None
    cache_control: dict[str, Any] | None = None

    def text(self) -> str:
        if isinstance(self.content, str):
            return self.content
        return "".join(block.text for block in self.content)


class ThinkingBlock(Lenient):
    """An assistant's earlier thinking, sent back by clients; not shown to the model."""

    type: Literal["thinking", "redacted_thinking"]
    thinking: str | None = None
    signature: str | None = None
    data: str | None = None


Block = Annotated[
    TextBlock | ImageBlock | ToolUseBlock | ToolResultBlock | ThinkingBlock,
    Field(discriminator="type"),
]


class MessageParam(Strict):
    role: Literal["user", "assistant"]
    content: str | list[Block]


class ToolParam(Strict):
    name: Annotated[str, Field(pattern=r"^[a-zA-Z0-9_-]{1,128}$")]
    description: str | None = None
    input_schema: dict[str, Any]
    type: Literal["custom"] | None = None
    cache_control: dict[str, Any] | None = None


class ToolChoice(Strict):
    type: Literal["auto", "any", "tool", "none"]
    name: str | None = None
    disable_parallel_tool_use: bool | None = None


class JsonOutputFormat(Strict):
    type: Literal["json_schema"]
    schema_: dict[str, Any] = Field(alias="schema")


class OutputConfig(Strict):
    effort: Literal["low", "medium", "high", "xhigh", "max"] | None = None  # accepted
    format: JsonOutputFormat | None = None  # structured output: constrained decoding


class MessagesRequest(Strict):
    """The Messages API's body as the current `anthropic` SDK sends it. `temperature`,
    `top_p` and `top_k` (older clients, or `extra_body`) are used; `cache_control`,
    `diagnostics`, `inference_geo`, `speed`, `service_tier`, `metadata`, `thinking`,
    `user_profile_id`, `workspace_id` and `output_config.effort` are accepted and ignored
    (one tier and place, an automatic prefix cache, no per-request effort for local
    models); `container` (code execution) is refused."""

    model: Text
    max_tokens: Annotated[int, Field(ge=1)]
    messages: Annotated[list[MessageParam], Field(min_length=1)]
    system: str | list[TextBlock] | None = None
    stop_sequences: list[Text] | None = None
    temperature: Annotated[float, Field(ge=0, le=1)] | None = None
    top_p: Annotated[float, Field(gt=0, le=1)] | None = None
    top_k: Annotated[int, Field(ge=0)] | None = None
    stream: bool = False
    tools: list[ToolParam] | None = None
    tool_choice: ToolChoice | None = None
    metadata: dict[str, Any] | None = None  # accepted (user_id); not stored
    service_tier: Literal["auto", "standard_only"] | None = None  # accepted; one tier
    thinking: dict[str, Any] | None = None  # accepted; local models think as they do
    output_config: OutputConfig | None = None
    cache_control: dict[str, Any] | None = None
    container: None = None  # refused: no code-execution containers here
    diagnostics: dict[str, Any] | None = None
    inference_geo: str | None = None
    speed: Literal["standard", "fast"] | None = None
    user_profile_id: str | None = None
    workspace_id: str | None = None

    def response_format(self) -> dict[str, Any] | None:
        """`output_config.format` as OpenAI's response_format (constrained decoding)."""
        output = self.output_config.format if self.output_config else None
        if output is None:
            return None
        return {"type": "json_schema", "json_schema": {"name": "output", "schema": output.schema_}}

    def system_text(self) -> str:
        if self.system is None or isinstance(self.system, str):
            return self.system or ""
        return "\n\n".join(block.text for block in self.system)

    def openai_messages(self) -> list[dict[str, Any]]:
        """The conversation in OpenAI's message shape: tool results become tool messages
        (before the user's text of the same turn), tool uses an assistant's tool calls."""
        out: list[dict[str, Any]] = []
        if self.system_text():
            out.append({"role": "system", "content": self.system_text()})
        for message in self.messages:
            blocks = (
                [TextBlock(type="text", text=message.content)]
                if isinstance(message.content, str)
                else message.content
            )
            texts = [b.text for b in blocks if isinstance(b, TextBlock)]
            images = [b.url() for b in blocks if isinstance(b, ImageBlock)]
            if message.role == "assistant":
                if images:
                    raise ValueError("image blocks belong in user messages")
                calls = [
                    {"id": b.id, "type": "function",
                     "function": {"name": b.name, "arguments": json.dumps(b.input)}}
                    for b in blocks if isinstance(b, ToolUseBlock)
                ]  # fmt: skip
                turn: dict[str, Any] = {"role": "assistant", "content": "".join(texts) or None}
                if calls:
                    turn["tool_calls"] = calls
                out.append(turn)
                continue
            for block in blocks:
                if isinstance(block, ToolUseBlock):
                    raise ValueError("tool_use blocks belong in assistant messages")
                if isinstance(block, ToolResultBlock):
                    out.append(
                        {"role": "tool", "tool_call_id": block.tool_use_id, "content": block.text()}
                    )
            if texts or images:
                content: Any = "".join(texts)
                if images:
                    content = [{"type": "text", "text": content}] + [
                        {"type": "image_url", "image_url": {"url": url}} for url in images
                    ]
                out.append({"role": "user", "content": content})
        return out

    def openai_tools(self) -> list[dict[str, Any]] | None:
        if not self.tools:
            return None
        return [
            {"type": "function", "function": {"name": t.name, "description": t.description or "",
                                              "parameters": t.input_schema}}
            for t in self.tools
        ]  # fmt: skip

    def openai_tool_choice(self) -> str | dict[str, Any] | None:
        choice = self.tool_choice
        if choice is None or not self.tools:
            return None
        if choice.type == "tool":
            if choice.name not in {t.name for t in self.tools}:
                raise ValueError(f"tool_choice names {choice.name!r}, which is not in tools")
            return {"type": "function", "function": {"name": choice.name}}
        return {"auto": "auto", "any": "required", "none": "none"}[choice.type]


# Anthropic's error types by HTTP status (its error shape: {"type": "error", "error":
# {"type", "message"}}).
ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    503: "overloaded_error",
}


class AnthropicErrorDetail(BaseModel):
    type: str
    message: str


class AnthropicError(BaseModel):
    """Anthropic's error body."""

    type: Literal["error"] = "error"
    error: AnthropicErrorDetail


def anthropic_error(error: PalestraError) -> dict[str, Any]:
    kind = ERROR_TYPES.get(error.http_status, "api_error")
    return {"type": "error", "error": {"type": kind, "message": error.message}}
