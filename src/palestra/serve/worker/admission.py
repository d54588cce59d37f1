"""Admission control for one backend: at most `capacity` requests run, at most
`max_queue` wait; past that a request is refused at once (429), never left hanging."""

from __future__ import annotations

import asyncio

from palestra.core.errors import OverloadedError


class Admission:
    def __init__(self, capacity: int, max_queue: int):
        if capacity < 1 or max_queue < 0:
            raise ValueError("capacity must be >= 1 and max_queue >= 0")
        self.capacity = capacity
        self.max_queue = max_queue
        self.running = 0
        self.waiting = 0
        self._semaphore = asyncio.Semaphore(capacity)

    @property
    def queue_length(self) -> int:
        return self.running + self.waiting

    async def acquire(self) -> Ticket:
        if self.running >= self.capacity and self.waiting >= self.max_queue:
            raise OverloadedError(
                f"worker overloaded: {self.running} running and {self.waiting} waiting "
                f"(limit {self.capacity} + {self.max_queue}); retry later",
                code="overloaded",
            )
        self.waiting += 1
        try:
            await self._semaphore.acquire()
        finally:
            self.waiting -= 1
        self.running += 1
        return Ticket(self)


class Ticket:
    """A held place; `release()` is idempotent so every exit path may call it."""

    def __init__(self, admission: Admission):
        self._admission: Admission | None = admission

    def release(self) -> None:
        if self._admission is not None:
            self._admission.running -= 1
            self._admission._semaphore.release()
            self._admission = None
