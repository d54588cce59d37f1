"""Admission control for one backend: at most `capacity` requests run, at most
`max_queue` wait; past that a request is refused at once (429), never left hanging.

A refusal says when a place is likely to free up: the time a request holds its place
(a moving average over recent requests) times the number of rounds the queue needs to
drain, sent as `Retry-After`.
"""

from __future__ import annotations

import asyncio
import math
import time

from palestra.core.errors import OverloadedError

HOLD_SMOOTHING = 0.2  # weight of the newest request in the average hold time


class Admission:
    def __init__(self, capacity: int, max_queue: int):
        if capacity < 1 or max_queue < 0:
            raise ValueError("capacity must be >= 1 and max_queue >= 0")
        self.capacity = capacity
        self.max_queue = max_queue
        self.running = 0
        self.waiting = 0
        self.mean_hold_s = 1.0  # until a request has finished
        self._semaphore = asyncio.Semaphore(capacity)

    @property
    def queue_length(self) -> int:
        return self.running + self.waiting

    def retry_after(self) -> float:
        """Seconds until the queue has likely moved enough to take one more request."""
        rounds = math.ceil((self.waiting + 1) / self.capacity)
        return max(0.1, self.mean_hold_s * rounds)

    async def acquire(self) -> Ticket:
        if self.running >= self.capacity and self.waiting >= self.max_queue:
            raise OverloadedError(
                f"worker overloaded: {self.running} running and {self.waiting} waiting "
                f"(limit {self.capacity} + {self.max_queue}); retry later",
                code="overloaded",
                retry_after=self.retry_after(),
            )
        self.waiting += 1
        try:
            await self._semaphore.acquire()
        finally:
            self.waiting -= 1
        self.running += 1
        return Ticket(self)

    def _released(self, held_s: float) -> None:
        self.running -= 1
        self.mean_hold_s += HOLD_SMOOTHING * (held_s - self.mean_hold_s)
        self._semaphore.release()


class Ticket:
    """A held place; `release()` is idempotent so every exit path may call it."""

    def __init__(self, admission: Admission):
        self._admission: Admission | None = admission
        self._since = time.monotonic()

    def release(self) -> None:
        if self._admission is not None:
            self._admission._released(time.monotonic() - self._since)
            self._admission = None
