"""When a child process that died is started again: the crash-loop guard that the engine
process (in a worker) and the worker (in `palestra serve`) share, and how a process ended,
in words. A child that dies `LIMIT` times within `WINDOW_S` is not started again: a
crash that repeats (a model that no longer loads, a request that crashes it each time it
is retried) must end in one clear error, not a loop."""

from __future__ import annotations

import contextlib
import signal
import time

LIMIT = 3
WINDOW_S = 300.0


class Deaths:
    """The deaths of one child within the window: `too_many` records one more."""

    def __init__(self, limit: int | None = None, window_s: float | None = None):
        self.limit = LIMIT if limit is None else limit
        self.window_s = WINDOW_S if window_s is None else window_s
        self._times: list[float] = []

    @property
    def count(self) -> int:
        return len(self._times)

    @property
    def window_minutes(self) -> float:
        return self.window_s / 60

    def too_many(self) -> bool:
        """Record a death now; True when it makes `limit` within the window."""
        now = time.monotonic()
        self._times = [t for t in self._times if now - t < self.window_s] + [now]
        return len(self._times) >= self.limit


def exit_status(code: int | None) -> str:
    """How a process ended, in words: "exit code 1", "killed by SIGKILL"."""
    if code is not None and code < 0:
        with contextlib.suppress(ValueError):
            return f"killed by {signal.Signals(-code).name}"
    return f"exit code {code}"
