"""Handing a generation's chunks from where decoding runs (an engine thread, a decode
thread) to the async consumer of `Backend.generate`.

`ChunkStream` is one request's channel: producers put chunks or a failure (from the event
loop or, with `put_threadsafe`, from any thread); `chunks()` yields them until the final
chunk, merging what piled up while the consumer was busy (fewer, larger frames downstream,
the same text and tokens), and raises a failure as a `PalestraError` (any other
exception, a bug or memory running out, as a `BackendError`: HTTP 500, not the client's
fault). `start_thread` runs a blocking decode loop in a daemon thread that feeds a stream.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Callable

from palestra.core.errors import BackendError, PalestraError
from palestra.core.types import GenerationChunk, join_chunks

Item = GenerationChunk | BaseException


class ChunkStream:
    def __init__(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._queue: asyncio.Queue[Item] = asyncio.Queue()

    def put(self, item: Item) -> None:
        """From the event loop's own thread."""
        self._queue.put_nowait(item)

    def put_threadsafe(self, item: Item) -> None:
        self._loop.call_soon_threadsafe(self._queue.put_nowait, item)

    async def chunks(self) -> AsyncIterator[GenerationChunk]:
        while True:
            pending: list[GenerationChunk] = []
            failure: BaseException | None = None
            item = await self._queue.get()
            while True:
                if isinstance(item, BaseException):
                    failure = item
                    break
                pending.append(item)
                if self._queue.empty():
                    break
                item = self._queue.get_nowait()
            if pending:
                chunk = join_chunks(pending)
                yield chunk
                if chunk.finish_reason is not None:
                    return
            if failure is not None:
                if isinstance(failure, PalestraError):
                    raise failure
                # Not a PalestraError (a request's own faults are): the server's, a 500.
                raise BackendError(f"generation failed: {failure}") from failure


def start_thread(
    name: str, decode: Callable[[Callable[[GenerationChunk], None]], None], stream: ChunkStream
) -> threading.Thread:
    """Run `decode(emit)` in a daemon thread; its exception becomes the stream's failure."""

    def run() -> None:
        try:
            decode(stream.put_threadsafe)
        except Exception as exc:  # handed to the consumer, never lost in the thread
            stream.put_threadsafe(exc)

    thread = threading.Thread(target=run, name=name, daemon=True)
    thread.start()
    return thread
