"""`POST /v1/completions`: raw text (or token ids) continued, with `echo` and the legacy
`logprobs` shape; one choice per prompt per `n`, indexed prompt-major as OpenAI does."""

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
from palestra.serve.openai.schemas import CompletionRequest
from palestra.serve.wire import ChunkMessage, GenerateRequest

router = APIRouter()


def _payloads(body: CompletionRequest) -> list[dict[str, Any]]:
    payloads = []
    for prompt in body.prompts():
        for i in range(body.n):
            request = GenerateRequest(
                model=body.model,
                prompt=prompt if isinstance(prompt, str) else "",
                prompt_token_ids=None if isinstance(prompt, str) else prompt,
                sampling=body.sampling(
                    max_tokens=body.max_tokens,
                    logprobs=body.logprobs is not None,
                    top_logprobs=body.logprobs or 0,
                    index=i,
                ),
            )
            payloads.append(request.model_dump())
    return payloads


def _logprobs(chunks: list[ChunkMessage], offset: int) -> dict[str, Any]:
    tokens, values, tops, offsets = [], [], [], []
    for chunk in chunks:
        for lp in chunk.logprobs:
            tokens.append(lp.token)
            values.append(lp.logprob)
            tops.append(dict(lp.top))
            offsets.append(offset)
            offset += len(lp.token)
    return {
        "tokens": tokens,
        "token_logprobs": values,
        "top_logprobs": tops,
        "text_offset": offsets,
    }


@router.post("/v1/completions", response_model=None)
async def completions(
    body: CompletionRequest, request: Request
) -> JSONResponse | StreamingResponse:
    payloads = _payloads(body)
    streams = ChoiceStreams(
        request.app.state.upstream, body.model, payloads, request.app.state.metrics
    )
    try:
        await unless_disconnected(request, streams.first())
    except BaseException:
        await streams.aclose()
        raise
    completion_id, created = new_id("cmpl"), now()
    if body.stream:
        return StreamingResponse(
            _stream(body, streams, completion_id, created), media_type="text/event-stream"
        )
    results = await collect(streams, len(payloads))
    choices = []
    for index, result in enumerate(results):
        prefix = result.prompt if body.echo else ""
        choices.append(
            {
                "index": index,
                "text": prefix + result.text,
                "finish_reason": result.finish_reason,
                "logprobs": _logprobs(result.chunks, len(prefix))
                if body.logprobs is not None
                else None,
                **(
                    {"prompt_logprobs": result.prompt_logprobs}
                    if body.prompt_logprobs is not None
                    else {}
                ),
            }
        )
    prompt_tokens = sum(r.prompt_tokens for i, r in enumerate(results) if i % body.n == 0)
    completion_tokens = sum(r.completion_tokens for r in results)
    return JSONResponse(
        {
            "id": completion_id,
            "object": "text_completion",
            "created": created,
            "model": body.model,
            "choices": choices,
            "usage": usage(prompt_tokens, completion_tokens),
        }
    )


async def _stream(
    body: CompletionRequest, streams: ChoiceStreams, completion_id: str, created: int
) -> AsyncIterator[bytes]:
    frame = frame_writer(completion_id, created, body.model, "text_completion", body.include_usage)

    prompt_tokens, completion_tokens = 0, 0
    try:
        async for index, chunk in streams:
            text = (chunk.prompt or "") + chunk.text if body.echo else chunk.text
            logprobs = _logprobs([chunk], 0) if body.logprobs is not None else None
            if text or chunk.finish_reason or logprobs:
                yield frame(
                    [
                        {
                            "index": index,
                            "text": text,
                            "logprobs": logprobs,
                            "finish_reason": chunk.finish_reason,
                        }
                    ]
                )
            if chunk.finish_reason:
                if index % body.n == 0:
                    prompt_tokens += chunk.prompt_tokens or 0
                completion_tokens += chunk.completion_tokens or 0
        if body.include_usage:
            yield frame([], usage(prompt_tokens, completion_tokens))
    except Exception as exc:
        yield sse_error(as_palestra_error(exc))
    finally:
        await streams.aclose()
    yield SSE_DONE
