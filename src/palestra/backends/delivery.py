"""What both batching engines (transformers and llama.cpp) share: `EngineThread`, the
decode thread that requests are submitted to, cancelled in and closed; and the hand-over
of chunks to the requests' event loops. Each request's chunks collect in an outbox during
a step, and `flush` delivers every outbox that is due (`pacing.due`: every step, or by
the request's `Pacing`, every so many tokens and milliseconds) with one
`call_soon_threadsafe` per event loop, so a loop wakes at most once per step, not once per
sequence. Where no event loop waits (an engine process), a `Handoff` takes a step's
chunks instead: whatever `call_soon_threadsafe` it is given, once per step."""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar

from palestra.backends.pacing import due, has_text
from palestra.core.errors import BackendError
from palestra.core.restarts import Deaths
from palestra.core.types import EVERY_TOKEN, GenerationChunk, Pacing

logger = logging.getLogger(__name__)

Deliver = Callable[[GenerationChunk | BaseException], None]
SequenceT = TypeVar("SequenceT")


class Handoff(Protocol):
    """Where a request's chunks are handed over from the engine thread: its event loop,
    or anything that runs the callback it is given (the engine process's outbox)."""

    def call_soon_threadsafe(self, callback: Callable[..., object], *args: Any) -> Any: ...


@dataclass
class Entry(Generic[SequenceT]):
    """One request inside an engine: its decoding state, where its chunks go, and the
    chunks of this step not yet delivered."""

    sequence: SequenceT
    loop: Handoff
    deliver: Deliver
    pacing: Pacing = EVERY_TOKEN
    outbox: list[GenerationChunk | BaseException] = field(default_factory=list)
    started: bool = False  # text was delivered
    sent_at: float = field(default_factory=time.monotonic)  # the last frame, or the start

    def due(self, now: float) -> bool:
        return due(self.outbox, self.pacing, self.started, now - self.sent_at)


def unique(entries: list[Entry[Any]]) -> list[Entry[Any]]:
    return list({id(e): e for e in entries}.values())


def flush(entries: list[Entry[Any]]) -> None:
    """Deliver every pending chunk that is due with one wake-up per event loop."""
    by_loop: dict[Handoff, list[Entry[Any]]] = {}
    now = time.monotonic()
    for entry in unique(entries):
        if entry.outbox and entry.due(now):
            by_loop.setdefault(entry.loop, []).append(entry)
    for loop, ready in by_loop.items():
        batch = [(e.deliver, e.outbox) for e in ready]
        for entry in ready:
            entry.started = entry.started or has_text(entry.outbox)
            entry.outbox = []
            entry.sent_at = now
        with contextlib.suppress(RuntimeError):  # a closed loop: nobody is listening
            loop.call_soon_threadsafe(_deliver_all, batch)


def _deliver_all(batch: list[tuple[Deliver, list[Any]]]) -> None:
    for deliver, items in batch:
        for item in items:
            deliver(item)


class EngineThread(Generic[SequenceT]):
    """A decode loop in its own daemon thread, started by the first request. Subclasses
    write `_run`, which waits on `_wake` for `_waiting` entries and stops once `_closed`;
    `_in_flight`, the entries it has taken from `_waiting`; and `_reset`, which forgets
    them.

    A failure `_run` lets escape (a bug, memory running out between steps) is logged and
    fails the requests in the engine; the loop then starts again on an empty batch
    (`_reset`, counted in `restarts`), and the requests still waiting go on, as the engine
    process and the worker are started again. A loop that fails `core/restarts.py`'s
    LIMIT times within its window closes the engine instead: every request in it or waiting
    gets the error, later ones are refused at once, and the failure is kept in `failure`
    (the model's health then says it). Without either, the thread would end silently and
    every request would wait forever."""

    thread_name = "palestra-engine"

    def __init__(self) -> None:
        self._waiting: deque[Entry[SequenceT]] = deque()
        self._wake = threading.Condition()
        self._closed = False
        self._thread: threading.Thread | None = None
        self.failure: str | None = None  # why the decode loop stopped, if it failed
        self.restarts = 0  # times the loop failed and started again
        self._deaths = Deaths()

    def submit(
        self,
        sequence: SequenceT,
        deliver: Deliver,
        pacing: Pacing = EVERY_TOKEN,
        handoff: Handoff | None = None,
    ) -> None:
        """Queue a sequence; `deliver` is called through `handoff` (by default the caller's
        event loop) per chunk, or per frame of chunks gathered by `pacing`."""
        entry = Entry(sequence, handoff or asyncio.get_running_loop(), deliver, pacing)
        with self._wake:
            if self._closed:
                raise BackendError("the model's engine is closed")
            self._waiting.append(entry)
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run_or_fail, name=self.thread_name, daemon=True
                )
                self._thread.start()
                atexit.register(self.close)  # a decode thread must not outlive the runtime
            self._wake.notify()

    def cancel(self, sequence: Any) -> None:
        sequence.cancelled = True
        with self._wake:
            self._wake.notify()

    def close(self) -> None:
        """Stop the engine thread; sequences still running or waiting get an error."""
        with self._wake:
            self._closed = True
            self._wake.notify()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join()
        atexit.unregister(self.close)

    def _run(self) -> None:
        raise NotImplementedError

    def _in_flight(self) -> list[Entry[SequenceT]]:
        raise NotImplementedError

    def _reset(self) -> None:
        """Forget the running batch after a failed loop (its requests have their error):
        the loop starts again with nothing running."""
        raise NotImplementedError

    def _run_or_fail(self) -> None:
        while True:
            try:
                self._run()
                return
            except BaseException as exc:
                logger.exception("the %s loop failed", self.thread_name)
                reason = f"the model's engine stopped: {type(exc).__name__}: {exc}"
                failure = BackendError(reason)
                with self._wake:
                    if self._started_again(exc, failure):
                        logger.warning("the %s loop starts again", self.thread_name)
                        continue
                    logger.error("the %s loop stays stopped: %s", self.thread_name, reason)
                    self.failure = reason
                    self._closed = True
                    self._fail_everyone(failure)
                    return

    def _started_again(self, exc: BaseException, failure: BackendError) -> bool:
        """After the loop failed (under `_wake`): fail the requests in it and forget its
        batch, unless the engine is closing, the failure is not an `Exception` (an
        interpreter exit), the loop failed too often, or the batch cannot be forgotten."""
        if not isinstance(exc, Exception) or self._closed or self._deaths.too_many():
            return False
        _fail(self._in_flight(), failure)
        try:
            self._reset()
        except Exception:
            logger.exception("the %s loop's batch could not be reset", self.thread_name)
            return False
        self.restarts += 1
        return True

    def _fail_everyone(self, failure: BaseException) -> None:
        """Hand `failure` to every request in the engine or waiting (under `_wake`): the
        engine closed, or its loop failed."""
        entries = [*self._in_flight(), *self._waiting]
        self._waiting.clear()
        _fail(entries, failure)


def _fail(entries: list[Entry[Any]], failure: BaseException) -> None:
    """Hand `failure` to each request of `entries` at once."""
    entries = unique(entries)
    for entry in entries:
        entry.outbox.append(failure)
    flush(entries)
