"""`until_ended`: a model's stream that the page ends at once (Stop, a new chat, a new
round), even while the model is silent (a long prompt being read, a slow provider).

The web UI never cancels the Gradio event that streams a reply (Gradio's cancel leaves the
stream's outputs reading "Error" when its closing message lands last). Stop marks the
reply stopped, and what replaces the chat ends its streams (`Conversation.end_streams`);
the stream then ends itself. Checking at each chunk is not enough, because a stalled model
sends no chunk; so the stream's next chunk is awaited in a task of its own while the page's
word is checked every `POLL_S`. That task reads the model's stream one chunk at a time,
when asked: it never reads ahead of what is shown, and it closes the model's stream
(ending its generation) whichever way the stream ends.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any, TypeVar

T = TypeVar("T")
POLL_S = 0.05  # how soon Stop ends a stream whose model is silent


class _End:
    """The source ran out (`error` None) or failed."""

    def __init__(self, error: Exception | None = None):
        self.error = error


async def until_ended(items: AsyncIterator[T], ended: Callable[[], bool]) -> AsyncIterator[T]:
    """`items` until they run out or `ended()` holds (checked before each item is passed
    on, and every `POLL_S` while waiting for one). A failure of `items` is raised here."""
    asks: asyncio.Queue[None] = asyncio.Queue()
    answers: asyncio.Queue[Any] = asyncio.Queue()

    async def reader() -> None:
        try:
            while True:
                await asks.get()
                try:
                    item: Any = await anext(items)
                except StopAsyncIteration:
                    item = _End()
                except Exception as exc:
                    item = _End(exc)
                answers.put_nowait(item)
                if isinstance(item, _End):
                    return
        finally:
            close = getattr(items, "aclose", None)
            if close is not None:
                await close()  # the model stops generating

    reading = asyncio.create_task(reader())
    answer: asyncio.Task[Any] | None = None
    try:
        while not ended():
            if answer is None:
                asks.put_nowait(None)
                answer = asyncio.ensure_future(answers.get())
            await asyncio.wait({answer}, timeout=POLL_S)
            if not answer.done() or ended():
                continue
            item, answer = answer.result(), None
            if isinstance(item, _End):
                if item.error is not None:
                    raise item.error
                return
            yield item
    finally:
        pending = [task for task in (answer, reading) if task is not None]
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
