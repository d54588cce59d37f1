"""Waiting on behalf of a client that may leave: if the HTTP client disconnects while a
request waits (for a queue slot, or for its first token), the wait is cancelled so no work
is done for nobody. Once a response streams, Starlette cancels it on disconnect itself."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import TypeVar

from starlette.requests import Request

from palestra.core.errors import PalestraError

T = TypeVar("T")


class ClientDisconnected(PalestraError):
    http_status = 499
    error_type = "client_disconnected"


async def unless_disconnected(
    request: Request,
    awaitable: Awaitable[T],
    poll: float = 0.2,
    abandon: Callable[[T], object] | None = None,
) -> T:
    """`await awaitable`, unless the client leaves first. If the result arrives just as
    the client leaves, `abandon(result)` undoes it (releases a queue slot, say)."""
    task = asyncio.ensure_future(awaitable)
    while True:
        done, _ = await asyncio.wait({task}, timeout=poll)
        if done:
            return task.result()
        if await request.is_disconnected():
            break
    task.cancel()
    with contextlib.suppress(BaseException):
        result = await task
        if abandon is not None:
            abandon(result)
    raise ClientDisconnected("the client went away before the reply started")
