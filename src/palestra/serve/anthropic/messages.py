"""`POST /v1/messages`: Anthropic's Messages API over the same workers as the OpenAI
routes. The request becomes a conversation in OpenAI's shape (`schemas.py`), runs as one
generation, and comes back as a Message (text and tool_use blocks, stop_reason, usage) or
as Anthropic's server-sent events (message_start, content_block_start / _delta / _stop,
message_delta, message_stop; an `error` event if it breaks mid-stream). Errors answer in
Anthropic's shape (`serve.http_errors` picks it for this path)."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, StreamingResponse

from palestra.core.errors import InvalidRequestError, PalestraError
from palestra.serve.anthropic.schemas import AnthropicError, MessagesRequest, anthropic_error
from palestra.serve.disconnect import unless_disconnected
from palestra.serve.openai.choices import ChoiceStreams, as_palestra_error, collect
from palestra.serve.openai.images import resolve_images
from palestra.serve.openai.tool_calls import parse_tool_calls
from palestra.serve.wire import GenerateRequest, SamplingWire

router = APIRouter()
RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": AnthropicError, "description": description}
    for status, description in {
        400: "Invalid request", 401: "Missing or wrong API key", 404: "Unknown model",
        429: "Overloaded: retry later", 500: "Internal error",
        502: "An upstream provider could not be reached", 503: "No live worker serves it",
    }.items()
}  # fmt: skip
STOP_REASONS = {"stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use"}


def _payload(body: MessagesRequest, messages: list[dict[str, Any]]) -> dict[str, Any]:
    try:
        tools, choice = body.openai_tools(), body.openai_tool_choice()
    except ValueError as exc:
        raise InvalidRequestError(str(exc), param="tool_choice") from None
    sampling = SamplingWire(
        temperature=1.0 if body.temperature is None else body.temperature,
        top_p=1.0 if body.top_p is None else body.top_p,
        top_k=body.top_k or 0,
        max_tokens=body.max_tokens,
        stop=list(body.stop_sequences or []),
    )
    return GenerateRequest(
        model=body.model, messages=messages, sampling=sampling, tools=tools, tool_choice=choice,
        response_format=body.response_format(),
    ).model_dump()  # fmt: skip


def _blocks(body: MessagesRequest, text: str, native: list[dict[str, Any]]) -> list[dict]:
    """The reply's content blocks: its text, and its tool calls as tool_use blocks."""
    tools = body.openai_tools() if body.openai_tool_choice() != "none" else None
    calls: list[dict[str, Any]] = []
    if tools:
        content, calls = (text or None, native) if native else parse_tool_calls(text, tools)
        text = content or ""
    blocks: list[dict[str, Any]] = [{"type": "text", "text": text}] if text or not calls else []
    for call in calls:
        function = call.get("function") or {}
        try:
            arguments = json.loads(function.get("arguments") or "{}")
        except ValueError:
            arguments = {}
        blocks.append(
            {"type": "tool_use", "id": call.get("id") or f"toolu_{uuid.uuid4().hex[:24]}",
             "name": function.get("name", ""), "input": arguments}
        )  # fmt: skip
    return blocks


def _stop_reason(finish: str | None, blocks: list[dict[str, Any]]) -> str:
    if any(block["type"] == "tool_use" for block in blocks):
        return "tool_use"
    return STOP_REASONS.get(finish or "stop", "end_turn")


@router.post("/v1/messages", response_model=None, responses=RESPONSES)
async def create_message(
    body: MessagesRequest, request: Request
) -> JSONResponse | StreamingResponse:
    try:
        messages = body.openai_messages()
    except ValueError as exc:
        raise InvalidRequestError(str(exc), param="messages") from None
    await resolve_images(messages, request.app.state.settings.image_limits)
    payload = _payload(body, messages)
    streams = ChoiceStreams(request.app.state.upstream, body.model, [payload])
    try:
        await unless_disconnected(request, streams.first())
    except BaseException:
        await streams.aclose()
        raise
    message_id = f"msg_{uuid.uuid4().hex[:24]}"
    if body.stream:
        return StreamingResponse(_events(body, streams, message_id), media_type="text/event-stream")
    (result,) = await collect(streams, 1)
    blocks = _blocks(body, result.text, result.tool_calls)
    return JSONResponse(
        {
            "id": message_id, "type": "message", "role": "assistant", "model": body.model,
            "content": blocks, "stop_reason": _stop_reason(result.finish_reason, blocks),
            "stop_sequence": None,
            "usage": {"input_tokens": result.prompt_tokens,
                      "output_tokens": result.completion_tokens},
        }
    )  # fmt: skip


def _event(name: str, data: dict[str, Any]) -> bytes:
    return f"event: {name}\ndata: {json.dumps({'type': name, **data})}\n\n".encode()


async def _events(
    body: MessagesRequest, streams: ChoiceStreams, message_id: str
) -> AsyncIterator[bytes]:
    """Anthropic's event stream. Text streams as it comes; with tools in play the reply
    is held until it ends (it may be a call), then sent as text and tool_use blocks."""
    message: dict[str, Any] = {
        "id": message_id, "type": "message", "role": "assistant", "model": body.model,
        "content": [], "stop_reason": None, "stop_sequence": None,
        "usage": {"input_tokens": 0, "output_tokens": 0},
    }  # fmt: skip
    yield _event("message_start", {"message": message})
    holding = bool(body.openai_tools()) and body.openai_tool_choice() != "none"
    text, finish, opened = "", None, False
    native: list[dict[str, Any]] = []
    usage = {"input_tokens": 0, "output_tokens": 0}
    try:
        async for _, chunk in streams:
            native.extend(chunk.tool_calls)
            if chunk.text and not holding:
                if not opened:
                    block = {"type": "text", "text": ""}
                    yield _event("content_block_start", {"index": 0, "content_block": block})
                    opened = True
                text_delta = {"type": "text_delta", "text": chunk.text}
                yield _event("content_block_delta", {"index": 0, "delta": text_delta})
            text += chunk.text
            if chunk.finish_reason:
                finish = chunk.finish_reason
                usage = {"input_tokens": chunk.prompt_tokens or 0,
                         "output_tokens": chunk.completion_tokens or 0}  # fmt: skip
        blocks = _blocks(body, text, native) if holding else [{"type": "text", "text": text}]
        for index, block in enumerate(blocks):
            if holding or not opened:
                start = {**block, "text": ""} if block["type"] == "text" else {**block, "input": {}}
                yield _event("content_block_start", {"index": index, "content_block": start})
                if block["type"] == "text" and block["text"]:
                    delta = {"type": "text_delta", "text": block["text"]}
                    yield _event("content_block_delta", {"index": index, "delta": delta})
                elif block["type"] == "tool_use":
                    delta = {"type": "input_json_delta", "partial_json": json.dumps(block["input"])}
                    yield _event("content_block_delta", {"index": index, "delta": delta})
            yield _event("content_block_stop", {"index": index})
        ending = {"stop_reason": _stop_reason(finish, blocks), "stop_sequence": None}
        yield _event("message_delta", {"delta": ending, "usage": usage})
        yield _event("message_stop", {})
    except Exception as exc:
        error: PalestraError = as_palestra_error(exc)
        yield _event("error", {"error": anthropic_error(error)["error"]})
    finally:
        await streams.aclose()
