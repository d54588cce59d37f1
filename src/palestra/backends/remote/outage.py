"""`Outage`: whether a hosted model is answering, from the outcome of its own requests.

A request that fails after its retries because the provider is unreachable, refuses the
key, has lost the model, rate-limits or breaks (429, 5xx) counts as a failure; a caller's
mistake (any other 4xx) does not. After `after` failures in a row the model is out: the
arena leaves it out of battles (FastChat's outage list, kept by hand there) until it answers
again. While out, one battle may try it every `retry_seconds`, so a provider that comes back
returns to the arena without anyone restarting anything.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from palestra.core.errors import BackendError, PalestraError

PROVIDER_DOWN_STATUSES = frozenset({401, 403, 404, 408, 429})


def retryable(error: PalestraError) -> bool:
    """A failure worth trying again: unreachable, rate limited, or the provider's 5xx."""
    status = getattr(error, "http_status", 500)
    unreachable = isinstance(error, BackendError) and error.code == "provider_unreachable"
    return unreachable or status in (408, 429) or status >= 500


def provider_down(error: PalestraError) -> bool:
    """A failure that says the provider is not serving this model (not the caller's fault)."""
    return retryable(error) or getattr(error, "http_status", 500) in PROVIDER_DOWN_STATUSES


@dataclass
class Outage:
    after: int = 2  # failures in a row before the model is out
    retry_seconds: float = 60.0  # while out, one try this often
    clock: Callable[[], float] = time.monotonic
    failures: int = 0
    since: float | None = None  # when it went out (clock time)
    down_at: float = 0.0  # when it went out (wall time, to show)
    last_error: str = ""
    _tried: float = field(default=0.0, repr=False)

    def failed(self, error: PalestraError) -> None:
        if not provider_down(error):
            return
        self.failures += 1
        self.last_error = error.message
        self._tried = self.clock()
        if self.failures >= self.after and self.since is None:
            self.since, self.down_at = self._tried, time.time()

    def answered(self) -> None:
        self.failures, self.since, self.last_error = 0, None, ""

    @property
    def out(self) -> bool:
        return self.since is not None

    def may_battle(self) -> bool:
        """In service, or out long enough since its last try to be tried again."""
        if not self.out:
            return True
        if self.clock() - self._tried >= self.retry_seconds:
            self._tried = self.clock()  # one battle tries it; the others wait
            return True
        return False
