"""`POST /v1/chat/completions`: messages in, the model's reply out, streamed as SSE
`chat.completion.chunk`s ending with `data: [DONE]`, or as one `chat.completion`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, StreamingResponse

from palestra.serve.disconnect import unless_disconnected
from palestra.serve.openai.choices import (
    SSE_DONE,
    ChoiceStreams,
    as_palestra_error,
    collect,
    frame_writer,
    new_id,
    now,
    sse_error,
    usage,
)
from palestra.serve.openai.images import resolve_images
from palestra.serve.openai.schemas import ChatCompletionRequest
from palestra.serve.openai.tool_calls import parse_tool_calls
from palestra.serve.wire import ChunkMessage, GenerateRequest

router = APIRouter()


def token_logprobs(chunk: ChunkMessage) -> list[dict[str, Any]]:
    """A chunk's logprobs in OpenAI's shape (chat's `logprobs.content`, and Responses')."""
    return [
        {
            "token": lp.token,
            "logprob": lp.logprob,
            "bytes": list(lp.token.encode()),
            "top_logprobs": [
                {"token": t, "logprob": v, "bytes": list(t.encode())} for t, v in lp.top
            ],
        }
        for lp in chunk.logprobs
    ]


def payloads(body: ChatCompletionRequest, messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        GenerateRequest(
            model=body.model,
            messages=messages,
            sampling=body.sampling(
                max_tokens=body.token_limit,
                logprobs=body.logprobs,
                top_logprobs=body.top_logprobs or 0,
                index=i,
            ),
            tools=body.tool_dicts,
            tool_choice=body.tool_choice_value,
            response_format=body.response_format,
            template_kwargs=body.template_kwargs,
            add_generation_prompt=body.add_generation_prompt,
            continue_final_message=body.continue_final_message,
            provider_options=body.provider_options,
        ).model_dump()
        for i in range(body.n)
    ]


@router.post("/v1/chat/completions", response_model=None)
async def chat_completions(
    body: ChatCompletionRequest, request: Request
) -> JSONResponse | StreamingResponse:
    upstream = request.app.state.upstream
    messages = body.message_dicts()
    await resolve_images(messages, request.app.state.settings.image_limits)
    streams = ChoiceStreams(
        upstream, body.model, payloads(body, messages), request.app.state.metrics
    )
    try:
        await unless_disconnected(request, streams.first())
    except BaseException:
        await streams.aclose()
        raise
    completion_id, created = new_id("chatcmpl"), now()
    if body.stream:
        return StreamingResponse(
            _stream(body, streams, completion_id, created), media_type="text/event-stream"
        )
    results = await collect(streams, body.n)
    choices = []
    for index, result in enumerate(results):
        message, finish_reason = _message(
            body, result.text, result.finish_reason, result.tool_calls
        )
        choice: dict[str, Any] = {
            "index": index,
            "message": message,
            "logprobs": None,
            "finish_reason": finish_reason,
        }
        if body.logprobs:
            choice["logprobs"] = {
                "content": [entry for c in result.chunks for entry in token_logprobs(c)]
            }
        choices.append(choice)
    totals = usage(results[0].prompt_tokens, sum(r.completion_tokens for r in results))
    completion: dict[str, Any] = {
        "id": completion_id,
        "object": "chat.completion",
        "created": created,
        "model": body.model,
        "choices": choices,
        "usage": totals,
    }
    if body.prompt_logprobs is not None:  # vLLM's: once per response, beside the choices
        completion["prompt_logprobs"] = results[0].prompt_logprobs
    return JSONResponse(completion)


def reply_tool_calls(
    body: ChatCompletionRequest, text: str, native: list[dict[str, Any]] | None = None
) -> tuple[str | None, list[dict]]:
    """Tool calls in a finished reply: those a provider returned natively, else those a
    local model wrote as text (none when the request offered no tools)."""
    if not body.tools_in_play:
        return text, []
    if native:
        content, calls = (text or None), list(native)
    else:
        content, calls = parse_tool_calls(text, body.tools_in_play)
    if body.parallel_tool_calls is False:
        calls = calls[:1]
    return content, calls


def _message(
    body: ChatCompletionRequest,
    text: str,
    finish_reason: str | None,
    native_calls: list[dict[str, Any]] | None = None,
) -> tuple[dict[str, Any], str | None]:
    content, calls = reply_tool_calls(body, text, native_calls)
    if not calls:
        return {"role": "assistant", "content": body.echoed + text}, finish_reason
    return {"role": "assistant", "content": content, "tool_calls": calls}, "tool_calls"


async def _stream(
    body: ChatCompletionRequest, streams: ChoiceStreams, completion_id: str, created: int
) -> AsyncIterator[bytes]:
    frame = frame_writer(
        completion_id, created, body.model, "chat.completion.chunk", body.include_usage
    )

    started: set[int] = set()
    prompt_tokens, completion_tokens = 0, 0
    # With tools in play a reply may turn out to be a call: hold each choice's text
    # until it finishes, then send it as content or as tool_calls.
    held: dict[int, str] = {}
    native_calls: dict[int, list[dict[str, Any]]] = {}
    try:
        async for index, chunk in streams:
            if index not in started:
                started.add(index)
                yield frame(
                    [
                        {
                            "index": index,
                            "delta": {"role": "assistant", "content": body.echoed},
                            "logprobs": None,
                            "finish_reason": None,
                        }
                    ]
                )
            if body.tools_in_play:
                held[index] = held.get(index, "") + chunk.text
                native_calls.setdefault(index, []).extend(chunk.tool_calls)
            elif chunk.text or chunk.logprobs:
                yield frame(
                    [
                        {
                            "index": index,
                            "delta": {"content": chunk.text},
                            "logprobs": {"content": token_logprobs(chunk)}
                            if body.logprobs
                            else None,
                            "finish_reason": None,
                        }
                    ]
                )
            if chunk.finish_reason:
                prompt_tokens = chunk.prompt_tokens or 0
                completion_tokens += chunk.completion_tokens or 0
                finish_reason: str = chunk.finish_reason
                if body.tools_in_play:
                    content, calls = reply_tool_calls(
                        body, held.pop(index, ""), native_calls.pop(index, None)
                    )
                    delta: dict[str, Any] = {"content": content} if content else {}
                    if calls:
                        finish_reason = "tool_calls"
                        delta["tool_calls"] = [{"index": k, **call} for k, call in enumerate(calls)]
                    if delta:
                        yield frame(
                            [
                                {
                                    "index": index,
                                    "delta": delta,
                                    "logprobs": None,
                                    "finish_reason": None,
                                }
                            ]
                        )
                yield frame(
                    [
                        {
                            "index": index,
                            "delta": {},
                            "logprobs": None,
                            "finish_reason": finish_reason,
                        }
                    ]
                )
        if body.include_usage:
            yield frame([], usage(prompt_tokens, completion_tokens))
    except Exception as exc:
        yield sse_error(as_palestra_error(exc))
    finally:
        await streams.aclose()
    yield SSE_DONE
