"""`WorkerTable`: registered workers, their heartbeats, expiry, and the dispatch policies
(shortest queue relative to capacity, or a lottery weighted by capacity).

A model whose last worker left (a failed request dropped it, or its heartbeats stopped)
is answered for `RETURNING_S` with 503 and `Retry-After`, not 404: a worker that crashed
is usually coming back (`palestra serve` starts it again; so do systemd and Kubernetes),
and clients retry a 503 where a 404 tells them the model does not exist."""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field

from palestra.core.errors import ModelNotFoundError, NoWorkerError
from palestra.serve.controller.settings import Policy
from palestra.serve.wire import WorkerRow

RETURNING_S = 300.0  # how long a model whose last worker left is expected back
RETRY_AFTER_S = 5.0  # what a request for it is told to wait
WORKER_LEFT = "worker_left"  # the code of the 503 it gets


@dataclass
class WorkerEntry:
    address: str
    models: list[str]
    capacity: int
    queue_length: int
    vision_models: list[str] = field(default_factory=list)
    last_heartbeat: float = field(default_factory=time.monotonic)


class WorkerTable:
    def __init__(self, expiry: float, policy: Policy = "shortest_queue", seed: int | None = None):
        self.expiry = expiry
        self.policy = policy
        self._workers: dict[str, WorkerEntry] = {}
        self._left: dict[str, float] = {}  # model: when its last worker left
        self._random = random.Random(seed)

    def register(
        self,
        address: str,
        models: list[str],
        capacity: int,
        queue_length: int,
        vision_models: list[str] | None = None,
    ) -> None:
        self._workers[address] = WorkerEntry(
            address, list(models), max(1, capacity), queue_length, list(vision_models or ())
        )
        for model in models:
            self._left.pop(model, None)

    def heartbeat(self, address: str, queue_length: int) -> bool:
        entry = self._workers.get(address)
        if entry is None:
            return False
        entry.queue_length = queue_length
        entry.last_heartbeat = time.monotonic()
        return True

    def drop(self, address: str) -> bool:
        """Forget a worker that failed a request."""
        entry = self._workers.pop(address, None)
        if entry is not None:
            self._note_left(entry)
        return entry is not None

    def expire(self) -> list[str]:
        """Forget workers whose heartbeats stopped (and models that never came back)."""
        now = time.monotonic()
        stale = [a for a, e in self._workers.items() if now - e.last_heartbeat > self.expiry]
        for address in stale:
            self._note_left(self._workers.pop(address))
        self._left = {m: t for m, t in self._left.items() if now - t < RETURNING_S}
        return stale

    def _note_left(self, entry: WorkerEntry) -> None:
        """Its models that no other worker serves are expected back (`RETURNING_S`)."""
        now = time.monotonic()
        served = set(self.models())
        for model in entry.models:
            if model not in served:
                self._left[model] = now

    def models(self) -> list[str]:
        return sorted({m for entry in self._workers.values() for m in entry.models})

    def vision_models(self) -> list[str]:
        """Served models that accept images."""
        return sorted({m for entry in self._workers.values() for m in entry.vision_models})

    def rows(self) -> list[WorkerRow]:
        now = time.monotonic()
        return [
            WorkerRow(
                address=e.address,
                models=e.models,
                capacity=e.capacity,
                queue_length=e.queue_length,
                last_heartbeat_age_s=round(now - e.last_heartbeat, 2),
            )
            for e in sorted(self._workers.values(), key=lambda e: e.address)
        ]

    def pick(self, model: str, exclude: list[str] | None = None) -> str:
        serving = [e for e in self._workers.values() if model in e.models]
        if not serving:
            left = self._left.get(model)
            if left is not None and (ago := time.monotonic() - left) < RETURNING_S:
                raise NoWorkerError(
                    f"model {model!r} has no live worker now: its last one left {ago:.0f} s "
                    "ago and may be restarting; retry later",
                    code=WORKER_LEFT,
                    retry_after=RETRY_AFTER_S,
                )
            served = ", ".join(self.models()) or "none"
            raise ModelNotFoundError(
                f"model {model!r} is not served; served models: {served}",
                param="model",
                code="model_not_found",
            )
        candidates = [e for e in serving if e.address not in set(exclude or ())]
        if not candidates:
            raise NoWorkerError(
                f"no live worker can take a request for {model!r} now "
                f"({len(serving)} known, all failed); retry later",
                code="no_worker",
            )
        if self.policy == "lottery":
            chosen = self._random.choices(candidates, weights=[e.capacity for e in candidates])[0]
        else:
            chosen = min(candidates, key=lambda e: (e.queue_length / e.capacity, e.address))
        chosen.queue_length += 1  # optimistic, until the next heartbeat says otherwise
        return chosen.address
