"""The transformers engine in a process of its own (vLLM V1's EngineCore): what
`--engine-process` turns on, by default in a worker.

In one process, the worker's event loop (HTTP, templates, relaying chunks) and the batch
engine's thread share one interpreter lock: each time a small model's decode step lets
go of it for a tensor operation, a busy event loop can take it and hold the engine back
(benchmarks/README.md measured a Python thread busy 15% of the time slowing the engine by
15-19% in-process, and by 0-8% from another process). Here the worker keeps the front
(`HFBackend`: tokenizer, template, checks, the prompt's ids) and an `EngineProcess`
drives a `LocalRunner` in a spawned child, which holds the weights.

The engine process is `python -c` started by `subprocess` (not `multiprocessing`'s spawn,
which would run the user's main script again), holding one end of two socket pairs
(`Wire`), which carry pickled tuples, one pair each way:
- to the engine: ("load", model path, options, name, template, log level) first; then
  ("start", id, SequenceSpec, Pacing), ("stop", id), ("call", id, name, args)
  for prompt logprobs, embeddings, scores and figures, and ("close",);
- from it: ("ready", Ready) or ("failed", error) once loaded; then ("chunks", [(id, chunk
  or error), ...]), one message per engine step for the whole batch, and ("result", id,
  ok, value).
The worker's event loop reads the engine's messages itself (a reader on the socket, no
thread of its own to wait for the interpreter lock): one wake-up per engine step.

If the engine process dies (the kernel's out-of-memory killer, a crash in native code),
every open request and call fails with a `BackendError` that says so, and a new engine
process loads the model, as Ollama restarts its runner: requests that come meanwhile wait
for it, and the worker's health is false until it is ready. An engine that keeps dying
(`core/restarts.py`: three times in five minutes) is not started again: then every
request fails, and the health check says to restart the worker.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import pickle
import signal
import socket
import struct
import subprocess
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any

from palestra.backends.delivery import Deliver
from palestra.backends.hf.facts import ModelFacts
from palestra.backends.options import HFOptions
from palestra.core.errors import BackendError, PalestraError
from palestra.core.restarts import Deaths, exit_status
from palestra.core.settings import LOG_FORMAT
from palestra.core.types import EVERY_TOKEN, GenerationChunk, Pacing, PromptLogprobs
from palestra.templates.spec import ChatTemplate

if TYPE_CHECKING:  # they import torch: `engine_main` loads it with no OpenMP team first
    from palestra.backends.hf.backend import HFBackend
    from palestra.backends.hf.runner import LocalRunner
    from palestra.backends.hf.sequence import SequenceSpec

logger = logging.getLogger(__name__)

Item = GenerationChunk | BaseException


@dataclass(frozen=True)
class Ready:
    """What the engine process tells the worker once the model is loaded."""

    model_name: str
    template: ChatTemplate
    facts: ModelFacts
    capacity: int


def serves_in_process(model_path: str) -> str | None:
    """Why this model's engine stays in the worker (None: it may run in its own process).
    The engine process serves text generation; other kinds are rare on a busy server."""
    from palestra.models.inspect import inspect_model

    if sys.platform == "win32":
        return "the engine process needs POSIX (its socket is passed as a file descriptor)"
    kind = inspect_model(model_path).kind
    if kind != "chat":
        return f"the engine process serves text models, and this is a {kind} model"
    return None


# ---------------------------------------------------------------------------- worker side
Started = tuple[subprocess.Popen[bytes], "Wire", Ready]


@dataclass(frozen=True)
class Launch:
    """How an engine process is started on a model: when the worker loads it, and again
    after the engine died."""

    model_path: str
    options: HFOptions
    model_name: str | None
    conv_template: str | None

    def spawn(self) -> tuple[subprocess.Popen[bytes], Wire]:
        """Start the process and ask it to load the model (`ready` waits for the answer)."""
        wire, theirs = Wire.pair()
        with theirs[0], theirs[1]:
            fds = [theirs[0].fileno(), theirs[1].fileno()]
            process = subprocess.Popen(
                [sys.executable, "-c", ENTRY, *map(str, fds)],
                pass_fds=fds,
                stdin=subprocess.DEVNULL,
            )
        level = logging.getLogger().getEffectiveLevel()  # the engine logs as we do
        wire.send(
            ("load", self.model_path, self.options, self.model_name, self.conv_template, level)
        )
        return process, wire

    def ready(self, process: subprocess.Popen[bytes], wire: Wire) -> Ready:
        """The loaded model's facts; a model that fails to load raises the engine's error."""
        try:
            message = wire.recv()
        except (EOFError, OSError):
            raise BackendError(
                f"the engine process exited while loading {self.model_path} (exit code "
                f"{process.wait()}); see its messages above, or serve without "
                "--engine-process"
            ) from None
        if message[0] == "failed":
            process.wait()
            raise message[1]
        wire.stop_blocking()  # from now on its messages are read by an event loop
        ready: Ready = message[1]
        return ready

    def start(self) -> Started:
        """A new engine process with the model loaded (blocking: run it in a thread)."""
        process, wire = self.spawn()
        try:
            return process, wire, self.ready(process, wire)
        except BaseException:
            process.kill()
            process.wait()
            raise


class EngineProcess:
    """A `ModelRunner` whose `LocalRunner` lives in a child process. Its messages are read
    by the event loop of the requests (one loop at a time; a later loop takes over once
    the earlier one has closed), as vLLM's AsyncLLM reads its engine's output. A dead
    engine process is started again by a thread of its own (`_restart`), and the loop
    adopts it (`_adopt`)."""

    def __init__(self, launch: Launch, started: Started):
        self._launch = launch
        self._process, self._wire, ready = started
        self._capacity = ready.capacity
        self._ids = itertools.count()
        # What waits on the engine, touched on the listening event loop's thread only.
        self._requests: dict[int, Deliver] = {}
        self._calls: dict[int, asyncio.Future[Any]] = {}
        self._failure: BackendError | None = None  # no engine, and none to come
        self._restarting: BackendError | None = None  # why a new engine is loading
        self._held: dict[int, tuple[Any, ...]] = {}  # messages for the engine to come
        self._deaths = Deaths()
        self._closing = False
        self._listening: asyncio.AbstractEventLoop | None = None
        # Handed from the restarting thread to the loop: the new engine, or why it failed.
        self._restarted: Started | BaseException | None = None
        self._restarted_lock = threading.Lock()
        self._restart_thread: threading.Thread | None = None
        self.restarts = 0

    @classmethod
    def backend(
        cls,
        model_path: str,
        options: HFOptions,
        model_name: str | None,
        conv_template: str | None,
    ) -> HFBackend:
        """Start the engine process on `model_path` and return the worker's front for it;
        a model that fails to load raises here, as it would in-process."""
        from palestra.backends.hf.backend import HFBackend
        from palestra.backends.hf.loading import load_tokenizer
        from palestra.models.inspect import inspect_model

        launch = Launch(model_path, options, model_name, conv_template)
        process, wire = launch.spawn()
        try:
            tokenizer = load_tokenizer(inspect_model(model_path), options)  # while it loads
            ready = launch.ready(process, wire)
        except BaseException:
            process.kill()
            raise
        runner = cls(launch, (process, wire, ready))
        return HFBackend(tokenizer, ready.template, ready.model_name, ready.facts, runner)

    @property
    def capacity(self) -> int:
        return self._capacity

    def start(
        self, spec: SequenceSpec, deliver: Deliver, pacing: Pacing = EVERY_TOKEN
    ) -> Callable[[], None]:
        self._listen()
        if self._failure is not None:
            raise self._failure
        request = next(self._ids)
        self._requests[request] = deliver
        self._send(request, ("start", request, spec, pacing))

        def stop() -> None:
            if self._requests.pop(request, None) is None:  # it ended
                return
            if self._held.pop(request, None) is None:  # the engine has it
                self._wire.send(("stop", request))

        return stop

    async def prompt_logprobs(
        self, ids: list[int], top: int, adapter: str | None
    ) -> PromptLogprobs:
        result: PromptLogprobs = await self._call("prompt_logprobs", ids, top, adapter)
        return result

    async def embed(self, texts: list[str]) -> list[list[float]]:
        result: list[list[float]] = await self._call("embed", texts)
        return result

    async def cross_encode(self, pairs: list[tuple[str, str]], activation: bool) -> list[float]:
        result: list[float] = await self._call("cross_encode", pairs, activation)
        return result

    async def stats(self) -> dict[str, Any]:
        self._listen()
        if self._restarting is not None:  # health answers now, false, with the reason
            raise self._restarting
        result: dict[str, Any] = await self._call("stats")
        return {**result, "engine_process": self._process.pid, "engine_restarts": self.restarts}

    async def close(self) -> None:
        self._closing = True
        restart = self._restart_thread
        if restart is not None:  # an engine loading: close it too, once it is up
            await asyncio.to_thread(restart.join)
            self._adopt()
        self._wire.send(("close",))
        try:
            await asyncio.to_thread(self._process.wait, 30)
        except subprocess.TimeoutExpired:
            self._process.kill()
            await asyncio.to_thread(self._process.wait)
        self._ended()

    async def _call(self, name: str, *args: Any) -> Any:
        future: asyncio.Future[Any] = self._listen().create_future()
        if self._failure is not None:
            raise self._failure
        call = next(self._ids)
        self._calls[call] = future
        self._send(call, ("call", call, name, args))
        try:
            return await future
        finally:  # answered, failed, or its caller went away
            self._calls.pop(call, None)
            self._held.pop(call, None)

    def _send(self, key: int, message: tuple[Any, ...]) -> None:
        """To the engine, or, while a new one loads, held for it."""
        if self._restarting is not None:
            self._held[key] = message
        else:
            self._wire.send(message)

    def _listen(self) -> asyncio.AbstractEventLoop:
        """Have the running event loop read the engine's messages."""
        loop = asyncio.get_running_loop()
        if loop is not self._listening and self._failure is None:
            if self._listening is not None and not self._listening.is_closed():
                raise BackendError(
                    "an engine process serves one event loop at a time; close the other "
                    "one, or load the model with engine_process='off'"
                )
            self._listening = loop
            if self._restarting is None:
                loop.add_reader(self._wire.fileno(), self._readable)
        self._adopt()  # a new engine that came up while no loop listened
        return loop

    def _readable(self) -> None:
        try:
            messages = self._wire.received()
        except EOFError:
            self._ended()
            return
        for message in messages:
            if message[0] == "chunks":
                self._deliver(message[1])
            elif message[0] == "result":
                _, call, ok, value = message
                future = self._calls.pop(call, None)
                if future is not None:
                    _settle(future, ok, value)

    def _ended(self) -> None:
        """The engine process closed its end: fail whatever waits on it, and start a new
        one unless the worker is closing or engines keep dying."""
        if self._listening is not None and not self._listening.is_closed():
            self._listening.remove_reader(self._wire.fileno())
        if self._failure is not None or self._restarting is not None:
            return
        with contextlib.suppress(subprocess.TimeoutExpired):
            self._process.wait(1)  # it closed its end as it exited: for its exit code
        if self._closing:
            self._fail(BackendError("the model is shutting down"))
            return
        how = exit_status(self._process.returncode)
        if self._deaths.too_many():
            self._fail(
                BackendError(
                    f"the engine process stopped ({how}), {self._deaths.count} times in "
                    f"{self._deaths.window_minutes:g} minutes; restart the worker once the "
                    "cause is fixed"
                )
            )
            return
        self._restarting = BackendError(
            f"the engine process stopped ({how}); a new one is loading the model"
        )
        logger.error("%s", self._restarting)
        self._fail_waiting(self._restarting)
        self._restart_thread = threading.Thread(
            target=self._restart, name="engine-restart", daemon=True
        )
        self._restart_thread.start()

    def _restart(self) -> None:
        """On its own thread: start a new engine process and hand it to the listening loop
        (or, if that loop has closed, to the next one that listens)."""
        try:
            restarted: Started | BaseException = self._launch.start()
        except BaseException as exc:
            restarted = exc
        with self._restarted_lock:
            self._restarted = restarted
        loop = self._listening
        if loop is not None:
            with contextlib.suppress(RuntimeError):  # closed: `_listen` adopts it
                loop.call_soon_threadsafe(self._adopt)

    def _adopt(self) -> None:
        """On the loop: take over the engine `_restart` started, and send it what was held."""
        with self._restarted_lock:
            restarted, self._restarted = self._restarted, None
        if restarted is None:
            return
        reason, self._restarting = self._restarting, None
        if isinstance(restarted, BaseException):
            self._held = {}
            self._fail(BackendError(f"{reason}, and it failed: {restarted}; restart the worker"))
            return
        self._process, self._wire, _ = restarted
        self.restarts += 1
        logger.info("a new engine process (%d) serves the model", self._process.pid)
        if self._listening is not None and not self._listening.is_closed():
            self._listening.add_reader(self._wire.fileno(), self._readable)
        held, self._held = self._held, {}
        for message in held.values():
            self._wire.send(message)

    def _fail(self, failure: BackendError) -> None:
        """No engine from now on: fail what waits and every later request with `failure`."""
        if not self._closing:
            logger.error("%s", failure)
        self._failure = failure
        self._fail_waiting(failure)

    def _fail_waiting(self, failure: BackendError) -> None:
        requests, self._requests = self._requests, {}
        calls, self._calls = self._calls, {}
        for deliver in requests.values():
            deliver(failure)
        for future in calls.values():
            _settle(future, False, failure)

    def _deliver(self, step: list[tuple[int, Item]]) -> None:
        """A step's chunks, each to its request."""
        for request, item in step:
            deliver = self._requests.get(request)
            if deliver is None:  # stopped by its consumer
                continue
            if isinstance(item, BaseException) or item.finish_reason is not None:
                del self._requests[request]
            deliver(item)


class Wire:
    """One end of the worker-engine link: two sockets (to the engine, from it) carrying
    pickled messages, each framed by its length (8 bytes, big-endian). Sending blocks;
    receiving blocks (`recv`) until `stop_blocking`, then takes what has come
    (`received`, for an event loop's reader)."""

    HEADER = struct.Struct("!Q")

    def __init__(self, outgoing: socket.socket, incoming: socket.socket):
        self._outgoing = outgoing
        self._incoming = incoming
        self._send_lock = threading.Lock()
        self._buffer = bytearray()

    @classmethod
    def pair(cls) -> tuple[Wire, tuple[socket.socket, socket.socket]]:
        """This end, and the two sockets of the other end (to hand to the engine process
        as its `Wire(outgoing, incoming)`)."""
        to_engine, engine_reads = socket.socketpair()
        engine_writes, from_engine = socket.socketpair()
        return cls(to_engine, from_engine), (engine_writes, engine_reads)

    def fileno(self) -> int:
        return self._incoming.fileno()

    def send(self, message: tuple[Any, ...]) -> None:
        """Send `message`; if the other end is gone, its reader will find out."""
        payload = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
        with self._send_lock, contextlib.suppress(OSError):
            self._outgoing.sendall(self.HEADER.pack(len(payload)) + payload)

    def recv(self) -> Any:
        """The next message, waiting for it; EOFError once the other end has closed."""
        while (message := self._parse()) is None:
            data = self._incoming.recv(1 << 20)
            if not data:
                raise EOFError("the other end closed")
            self._buffer += data
        return message

    def stop_blocking(self) -> None:
        self._incoming.setblocking(False)

    def received(self) -> list[Any]:
        """Every whole message that has come (none if nothing has); EOFError once the
        other end has closed."""
        try:
            data = self._incoming.recv(1 << 20)
        except BlockingIOError:
            data = None
        except OSError:
            data = b""
        if data == b"":
            raise EOFError("the other end closed")
        if data:
            self._buffer += data
        messages = []
        while (message := self._parse()) is not None:
            messages.append(message)
        return messages

    def _parse(self) -> Any:
        size = self.HEADER.size
        if len(self._buffer) < size:
            return None
        (length,) = self.HEADER.unpack_from(self._buffer)
        if len(self._buffer) < size + length:
            return None
        message = pickle.loads(self._buffer[size : size + length])
        del self._buffer[: size + length]
        return message


def _settle(future: asyncio.Future[Any], ok: bool, value: Any) -> None:
    if future.done():  # its caller went away
        return
    if ok:
        future.set_result(value)
    else:
        future.set_exception(value)


# ---------------------------------------------------------------------------- engine side
ENTRY = "from palestra.backends.hf.engine_process import engine_main; engine_main()"


def engine_main() -> None:
    """The engine process (`python -c ENTRY OUT IN`): load the model the worker names,
    say so, then serve the worker until it closes its end or asks to close."""
    wire = Wire(*(socket.socket(fileno=int(fd)) for fd in sys.argv[1:3]))
    try:
        _, model_path, options, model_name, conv_template, level = wire.recv()
    except (EOFError, OSError):
        return
    logging.basicConfig(level=level, stream=sys.stderr, format=LOG_FORMAT)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl+C is the worker's to handle
    from palestra.backends.hf.cpu_threads import load_torch_teamless

    load_torch_teamless()
    from palestra.backends.hf.backend import HFBackend
    from palestra.backends.hf.loading import quiet_transformers

    quiet_transformers()
    options = options.model_copy(update={"engine_process": "off"})
    try:
        backend = HFBackend.load(
            model_path,
            options=options,
            model_name=model_name,
            conv_template=conv_template,
        )
    except Exception as exc:
        wire.send(("failed", _portable(exc)))
        return
    runner = backend.local
    assert runner is not None  # loaded with the engine process off
    ready = Ready(backend.model_name, backend.template, backend.facts, runner.capacity)
    wire.send(("ready", ready))  # if the worker is gone, `serve` ends at once
    _EngineCore(wire, runner).serve()


class _EngineCore:
    """The engine process's end of the `Wire`. It is the engine's `Handoff`: the engine
    thread hands it each step's chunks, which leave as one message."""

    def __init__(self, wire: Wire, runner: LocalRunner):
        self._wire = wire  # sent to by the engine thread and call threads
        self._runner = runner
        self._stops_lock = threading.Lock()  # the receiving and the engine thread
        # Each running request's stop; None until `start` returns it (the engine may end
        # a request first: then its entry is gone when `start` returns).
        self._stops: dict[int, Callable[[], None] | None] = {}
        self._step: list[tuple[int, Item]] = []  # filled and sent on the engine thread

    def serve(self) -> None:
        while True:
            try:
                message = self._wire.recv()
            except (EOFError, OSError):  # the worker is gone
                break
            kind = message[0]
            if kind == "start":
                _, request, spec, pacing = message
                with self._stops_lock:
                    self._stops[request] = None
                try:
                    stop = self._runner.start(
                        spec, partial(self._collect, request), pacing, handoff=self
                    )
                except Exception as exc:  # a bad grammar, say: that request's failure
                    with self._stops_lock:
                        del self._stops[request]
                    self._wire.send(("chunks", [(request, _portable(exc))]))
                    continue
                with self._stops_lock:
                    if request in self._stops:  # still running
                        self._stops[request] = stop
            elif kind == "stop":
                with self._stops_lock:
                    ending = self._stops.pop(message[1], None)
                if ending is not None:
                    ending()
            elif kind == "call":
                threading.Thread(target=self._answer, args=message[1:], daemon=True).start()
            elif kind == "close":
                break
        self._runner.close_sync()

    def call_soon_threadsafe(self, callback: Callable[..., object], *args: Any) -> None:
        """The engine thread's hand-over of a step: `callback` delivers each chunk to
        `_collect`; the step then leaves as one message."""
        callback(*args)
        step, self._step = self._step, []
        if step:
            self._wire.send(("chunks", step))

    def _collect(self, request: int, item: Item) -> None:
        if isinstance(item, BaseException) or item.finish_reason is not None:
            with self._stops_lock:
                self._stops.pop(request, None)
            item = _portable(item) if isinstance(item, BaseException) else item
        self._step.append((request, item))

    def _answer(self, call: int, name: str, args: tuple[Any, ...]) -> None:
        runner = self._runner
        calls: dict[str, Callable[..., Any]] = {
            "prompt_logprobs": runner.prompt_logprobs_sync,
            "embed": runner.embed_sync,
            "cross_encode": runner.cross_encode_sync,
            "stats": runner.stats_sync,
        }
        work = calls[name]
        try:
            self._wire.send(("result", call, True, work(*args)))
        except Exception as exc:
            self._wire.send(("result", call, False, _portable(exc)))


def _portable(exc: BaseException) -> BaseException:
    """`exc`, or, if it would not survive pickling, an error with its message."""
    if isinstance(exc, PalestraError):
        with contextlib.suppress(Exception):
            pickle.loads(pickle.dumps(exc))
            return exc
        return BackendError(str(exc))
    return RuntimeError(str(exc))
