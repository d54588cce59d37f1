"""Running the `n` choices of a request: each choice is its own upstream generation, all
consumed concurrently and merged into one stream of (choice index, chunk). An error before
any chunk arrives is raised to the caller (so it becomes an HTTP status); later errors
arrive in the stream. Chunks that queue up while the client reads slower than the worker
writes go out joined, one frame per choice, as the worker joins what piles up for it."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import anyio

from palestra.core.errors import PalestraError, error_envelope
from palestra.serve.metrics import ServingMetrics
from palestra.serve.openai.upstream import Upstream
from palestra.serve.wire import ChunkMessage

_DONE = object()


class ChoiceStreams:
    def __init__(
        self,
        upstream: Upstream,
        model: str,
        payloads: list[dict[str, Any]],
        metrics: ServingMetrics | None = None,
    ):
        self._metrics = metrics
        self._started = time.monotonic()
        self._first_token: dict[int, float] = {}
        self._queue: asyncio.Queue[tuple[int, Any]] = asyncio.Queue()
        self._open = len(payloads)
        self._tasks = [
            asyncio.create_task(self._pump(upstream, model, i, p)) for i, p in enumerate(payloads)
        ]
        self._peeked: tuple[int, ChunkMessage] | None = None
        self._held: tuple[int, Any] | None = None  # taken from the queue, not yet handed on

    async def _pump(
        self, upstream: Upstream, model: str, index: int, payload: dict[str, Any]
    ) -> None:
        try:
            stream = await upstream.generate(model, payload)
            async for chunk in stream:
                await self._queue.put((index, chunk))
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            await self._queue.put((index, exc))
        finally:
            self._queue.put_nowait((index, _DONE))

    async def first(self) -> None:
        """Wait for the first chunk; raise if the request failed before producing one."""
        item = await self._next()
        if item is not None:
            self._peeked = item

    async def _next(self) -> tuple[int, ChunkMessage] | None:
        while self._open:
            if self._held is not None:
                (index, item), self._held = self._held, None
            else:
                index, item = await self._queue.get()
            if item is _DONE:
                self._open -= 1
                continue
            if isinstance(item, BaseException):
                if self._metrics is not None and isinstance(item, PalestraError):
                    self._metrics.errors.labels(item.error_type).inc()
                raise item
            chunk = self._catch_up(index, item)
            self._observe(index, chunk)
            return index, chunk
        return None

    def _catch_up(self, index: int, chunk: ChunkMessage) -> ChunkMessage:
        """`chunk` joined with the same choice's chunks that queued up behind it while the
        client was slower than the worker: fewer, larger frames, the same text."""
        pending = [chunk]
        while pending[-1].finish_reason is None and not self._queue.empty():
            following = self._queue.get_nowait()
            if following[0] != index or not isinstance(following[1], ChunkMessage):
                self._held = following
                break
            pending.append(following[1])
        return ChunkMessage.joined(pending)

    def _observe(self, index: int, chunk: ChunkMessage) -> None:
        if self._metrics is None:
            return
        first = self._metrics.chunk_streamed(self._started, self._first_token.get(index), chunk)
        if first is not None:
            self._first_token[index] = first

    async def __aiter__(self) -> AsyncIterator[tuple[int, ChunkMessage]]:
        if self._peeked is not None:
            peeked, self._peeked = self._peeked, None
            yield peeked
        while (item := await self._next()) is not None:
            yield item

    async def aclose(self) -> None:
        """Stop every choice and wait until their worker streams are closed (which stops
        the workers). Shielded: it runs in a response's `finally` after Starlette has
        cancelled the response for a client that left, where an unshielded await is
        cancelled again at once and the workers would write the whole reply for nobody."""
        with anyio.CancelScope(shield=True):
            for task in self._tasks:
                task.cancel()
            for task in self._tasks:
                with contextlib.suppress(BaseException):
                    await task


@dataclass
class ChoiceResult:
    """A finished choice, for non-streamed responses."""

    text: str = ""
    prompt: str = ""
    finish_reason: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    chunks: list[ChunkMessage] = field(default_factory=list)
    tool_calls: list[dict[str, Any]] = field(default_factory=list)  # a provider's own
    prompt_logprobs: list[dict[str, dict[str, Any]] | None] | None = None


async def collect(streams: ChoiceStreams, count: int) -> list[ChoiceResult]:
    results = [ChoiceResult() for _ in range(count)]
    try:
        async for index, chunk in streams:
            result = results[index]
            result.text += chunk.text
            result.chunks.append(chunk)
            result.tool_calls.extend(chunk.tool_calls)
            result.prompt = chunk.prompt if chunk.prompt is not None else result.prompt
            if chunk.prompt_logprobs is not None:
                result.prompt_logprobs = chunk.prompt_logprobs
            if chunk.finish_reason:
                result.finish_reason = chunk.finish_reason
                result.prompt_tokens = chunk.prompt_tokens or 0
                result.completion_tokens = chunk.completion_tokens or 0
    finally:
        await streams.aclose()
    return results


def new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex}"


def now() -> int:
    return int(time.time())


def sse(data: Any) -> bytes:
    return f"data: {json.dumps(data, ensure_ascii=False)}\n\n".encode()


SSE_DONE = b"data: [DONE]\n\n"


def usage(prompt_tokens: int, completion_tokens: int) -> dict[str, int]:
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }


def frame_writer(
    completion_id: str, created: int, model: str, object_name: str, include_usage: bool
) -> Callable[..., bytes]:
    """A function that wraps choices (and, at the end, usage) into one SSE event."""

    def frame(choices: list[dict[str, Any]], usage: dict[str, int] | None = None) -> bytes:
        data: dict[str, Any] = {
            "id": completion_id,
            "object": object_name,
            "created": created,
            "model": model,
            "choices": choices,
        }
        if include_usage:
            data["usage"] = usage
        return sse(data)

    return frame


def sse_error(error: PalestraError) -> bytes:
    return sse(error_envelope(error))


def as_palestra_error(exc: BaseException) -> PalestraError:
    if isinstance(exc, PalestraError):
        return exc
    return PalestraError(f"internal error: {type(exc).__name__}: {exc}")
