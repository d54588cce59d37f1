"""`WorkerTable`: registered workers, their heartbeats, expiry, and the dispatch policies
(shortest queue relative to capacity, or a lottery weighted by capacity)."""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field

from palestra.core.errors import ModelNotFoundError, NoWorkerError
from palestra.serve.controller.settings import Policy
from palestra.serve.wire import WorkerRow


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

    def heartbeat(self, address: str, queue_length: int) -> bool:
        entry = self._workers.get(address)
        if entry is None:
            return False
        entry.queue_length = queue_length
        entry.last_heartbeat = time.monotonic()
        return True

    def drop(self, address: str) -> bool:
        return self._workers.pop(address, None) is not None

    def expire(self) -> list[str]:
        now = time.monotonic()
        stale = [a for a, e in self._workers.items() if now - e.last_heartbeat > self.expiry]
        for address in stale:
            del self._workers[address]
        return stale

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
