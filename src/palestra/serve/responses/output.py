"""What the Responses API sends back: `ResponseDraft` (one response being made: its id,
its output items, its status and usage, rendered as OpenAI's Response object) and the
event stream (`response.created` ... `response.completed`, each with its
`sequence_number`), whose events add up to the same Response the non-streamed call
returns."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

from palestra.core.errors import PalestraError
from palestra.serve.openai.chat import reply_tool_calls, token_logprobs
from palestra.serve.openai.choices import ChoiceStreams, as_palestra_error
from palestra.serve.openai.schemas import ChatCompletionRequest
from palestra.serve.responses.schemas import ResponsesRequest


def new_item_id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex}"


class ResponseDraft:
    def __init__(self, body: ResponsesRequest, chat: ChatCompletionRequest):
        self.body = body
        self.chat = chat
        self.id = new_item_id("resp")
        self.message_id = new_item_id("msg")
        self.created_at = int(time.time())
        self.completed_at: int | None = None
        self.status = "in_progress"
        self.output: list[dict[str, Any]] = []
        self.usage: dict[str, Any] | None = None
        self.error: dict[str, Any] | None = None
        self.incomplete_reason: str | None = None
        self.reply: dict[str, Any] = {"role": "assistant", "content": ""}

    def finish(
        self,
        text: str,
        finish_reason: str | None,
        native_calls: list[dict[str, Any]],
        logprobs: list[dict[str, Any]],
        prompt_tokens: int,
        completion_tokens: int,
    ) -> None:
        """Turn the finished reply into output items: the text as a message, the calls
        as function_call items."""
        content, calls = reply_tool_calls(self.chat, text, native_calls)
        truncated = finish_reason == "length" and not calls
        self.status = "incomplete" if truncated else "completed"
        self.incomplete_reason = "max_output_tokens" if truncated else None
        self.output = []
        if content or not calls:
            part: dict[str, Any] = {"type": "output_text", "text": content or "", "annotations": []}
            if self.body.wants_logprobs:
                part["logprobs"] = logprobs
            self.output.append(
                {"id": self.message_id, "type": "message", "role": "assistant",
                 "status": self.status, "content": [part]}
            )  # fmt: skip
        for call in calls:
            function = call.get("function") or {}
            self.output.append(
                {"id": new_item_id("fc"), "type": "function_call", "status": "completed",
                 "call_id": call.get("id") or new_item_id("call"),
                 "name": function.get("name", ""), "arguments": function.get("arguments", "{}")}
            )  # fmt: skip
        self.reply = {"role": "assistant", "content": content}
        if calls:
            self.reply["tool_calls"] = calls
        self.usage = {
            "input_tokens": prompt_tokens,
            "input_tokens_details": {"cached_tokens": 0},
            "output_tokens": completion_tokens,
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": prompt_tokens + completion_tokens,
        }
        self.completed_at = int(time.time())

    def fail(self, error: PalestraError) -> None:
        self.status = "failed"
        self.error = {"code": error.code or "server_error", "message": error.message}

    def as_dict(self) -> dict[str, Any]:
        """OpenAI's Response object: the output so far and the request's settings."""
        body = self.body
        text = body.text.model_dump(by_alias=True, exclude_none=True) if body.text else {}
        choice = body.tool_choice or "auto"
        tool_choice = choice if isinstance(choice, str) else choice.model_dump()
        return {
            "id": self.id,
            "object": "response",
            "created_at": self.created_at,
            "status": self.status,
            "background": False,
            "completed_at": self.completed_at,
            "error": self.error,
            "incomplete_details": (
                {"reason": self.incomplete_reason} if self.incomplete_reason else None
            ),
            "instructions": body.instructions,
            "max_output_tokens": body.max_output_tokens,
            "max_tool_calls": body.max_tool_calls,
            "metadata": body.metadata or {},
            "model": body.model,
            "output": self.output,
            "parallel_tool_calls": body.parallel_tool_calls is not False,
            "previous_response_id": body.previous_response_id,
            "prompt_cache_key": body.prompt_cache_key,
            "reasoning": {
                "effort": body.reasoning.effort if body.reasoning else None,
                "summary": None,
            },
            "safety_identifier": body.safety_identifier,
            "service_tier": body.service_tier or "default",
            "store": body.store,
            "temperature": 1.0 if body.temperature is None else body.temperature,
            "text": {"format": {"type": "text"}, **text},
            "tool_choice": tool_choice,
            "tools": [tool.model_dump(exclude_none=True) for tool in body.function_tools()],
            "top_logprobs": body.top_logprobs or 0,
            "top_p": 1.0 if body.top_p is None else body.top_p,
            "truncation": body.truncation or "disabled",
            "usage": self.usage,
            "user": body.user,
        }


class EventWriter:
    """Server-sent events numbered in order, as `sequence_number` says."""

    def __init__(self) -> None:
        self.sequence = 0

    def __call__(self, kind: str, **data: Any) -> bytes:
        event = {"type": kind, "sequence_number": self.sequence, **data}
        self.sequence += 1
        return f"event: {kind}\ndata: {json.dumps(event, ensure_ascii=False)}\n\n".encode()


def _message_opening(send: EventWriter, draft: ResponseDraft) -> list[bytes]:
    item = {"id": draft.message_id, "type": "message", "role": "assistant",
            "status": "in_progress", "content": []}  # fmt: skip
    part = {"type": "output_text", "text": "", "annotations": []}
    return [
        send("response.output_item.added", output_index=0, item=item),
        send("response.content_part.added", item_id=draft.message_id, output_index=0,
             content_index=0, part=part),
    ]  # fmt: skip


def _item_events(
    send: EventWriter, draft: ResponseDraft, index: int, item: dict[str, Any], opened: bool
) -> list[bytes]:
    """The events that finish output item `index` (and open it, unless it streamed)."""
    if item["type"] == "message":
        part = item["content"][0]
        where = {"item_id": item["id"], "output_index": index, "content_index": 0}
        events = [] if opened else _message_opening(send, draft)
        if not opened and part["text"]:
            events.append(
                send("response.output_text.delta", **where, delta=part["text"],
                     logprobs=part.get("logprobs", []))
            )  # fmt: skip
        return [
            *events,
            send("response.output_text.done", **where, text=part["text"],
                 logprobs=part.get("logprobs", [])),
            send("response.content_part.done", **where, part=part),
            send("response.output_item.done", output_index=index, item=item),
        ]  # fmt: skip
    where = {"item_id": item["id"], "output_index": index}
    return [
        send("response.output_item.added", output_index=index,
             item={**item, "arguments": "", "status": "in_progress"}),
        send("response.function_call_arguments.delta", **where, delta=item["arguments"]),
        send("response.function_call_arguments.done", **where, name=item["name"],
             arguments=item["arguments"]),
        send("response.output_item.done", output_index=index, item=item),
    ]  # fmt: skip


async def response_events(
    draft: ResponseDraft, streams: ChoiceStreams, on_done: Any
) -> AsyncIterator[bytes]:
    """The Responses event stream. Text streams as it comes; with tools in play the
    reply is held until it ends (it may be a call). `on_done(draft)` runs once the
    response is complete, before its last event (so it is stored when a client sees it)."""
    send = EventWriter()
    yield send("response.created", response=draft.as_dict())
    yield send("response.in_progress", response=draft.as_dict())
    holding = bool(draft.chat.tools_in_play)
    text, opened, finish = "", False, None
    native: list[dict[str, Any]] = []
    logprobs: list[dict[str, Any]] = []
    prompt_tokens = completion_tokens = 0
    try:
        async for _, chunk in streams:
            native.extend(chunk.tool_calls)
            chunk_logprobs = token_logprobs(chunk) if draft.body.wants_logprobs else []
            logprobs.extend(chunk_logprobs)
            text += chunk.text
            if chunk.text and not holding:
                if not opened:
                    for event in _message_opening(send, draft):
                        yield event
                    opened = True
                yield send(
                    "response.output_text.delta", item_id=draft.message_id, output_index=0,
                    content_index=0, delta=chunk.text, logprobs=chunk_logprobs,
                )  # fmt: skip
            if chunk.finish_reason:
                finish = chunk.finish_reason
                prompt_tokens = chunk.prompt_tokens or 0
                completion_tokens = chunk.completion_tokens or 0
        draft.finish(text, finish, native, logprobs, prompt_tokens, completion_tokens)
        for index, item in enumerate(draft.output):
            for event in _item_events(send, draft, index, item, opened and index == 0):
                yield event
        on_done(draft)
        ending = "response.incomplete" if draft.status == "incomplete" else "response.completed"
        yield send(ending, response=draft.as_dict())
    except Exception as exc:
        error = as_palestra_error(exc)
        draft.fail(error)
        yield send("error", code=error.code or error.error_type, message=error.message,
                   param=error.param)  # fmt: skip
        yield send("response.failed", response=draft.as_dict())
    finally:
        await streams.aclose()
