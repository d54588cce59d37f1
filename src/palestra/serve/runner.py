"""Running one or several ASGI apps with uvicorn in one process, stopping them all cleanly
on Ctrl-C or SIGTERM, optionally alongside a supervised task whose end stops them too
(`palestra serve` runs the controller and API server this way, with the model worker in a
child process).

Every port is bound before any server starts, so a taken port is one line that names the
option to change, and port 0 means "any free port" (`reserve`)."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import signal
import socket
from collections.abc import Callable, Coroutine, Generator
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from fastapi import FastAPI

from palestra.core.errors import PalestraError


class PortInUseError(PalestraError):
    """A port a server needs is taken (or not ours to take)."""


def reserve(host: str, port: int, flag: str = "--port") -> socket.socket:
    """A listening socket on host:port (port 0: a free one); a taken port raises one line
    naming `flag`, the option that changes it."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # proto named, not 0: asyncio turns Nagle's algorithm off (TCP_NODELAY) only on
    # accepted sockets whose proto is IPPROTO_TCP. Without it every reply on a kept-alive
    # connection waited ~40 ms for the client's delayed ACK, on every hop between services.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise PortInUseError(
                f"port {port} on {host} is already in use (another server?); "
                f"choose another with {flag} PORT, or {flag} 0 for any free port"
            ) from None
        raise PortInUseError(
            f"cannot listen on {host}:{port} ({exc.strerror}); change {flag}"
        ) from None
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def bound_port(sock: socket.socket) -> int:
    return int(sock.getsockname()[1])


@dataclass(frozen=True)
class Endpoint:
    name: str
    app: FastAPI
    host: str
    port: int
    flag: str = "--port"  # the option that sets this port, for the error when it is taken
    sock: socket.socket | None = None  # already reserved
    tls: dict[str, Any] = field(default_factory=dict)  # uvicorn's ssl_certfile, ssl_keyfile


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:  # signals are ours
        yield


Supervised = Callable[[], Coroutine[Any, Any, int]]


def run_servers(
    endpoints: list[Endpoint],
    on_started: Callable[[], None] | None = None,
    log_level: str = "warning",
    supervise: Supervised | None = None,
) -> int:
    """Serve until a signal (exit status 0) or until `supervise()` returns (its status);
    `supervise` starts once every endpoint is up and is cancelled on shutdown."""
    with asyncio.Runner(loop_factory=_loop_factory()) as runner:
        return runner.run(_serve_all(endpoints, on_started, log_level, supervise))


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop where it is installed (uvicorn's own `loop="auto"` choice): every frame of
    every stream goes through the event loop, and uvloop's costs less CPU than asyncio's."""
    try:
        import uvloop
    except ImportError:  # Windows
        return None
    factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    return factory


GRACEFUL_SHUTDOWN_SECONDS = 5


async def _serve_all(
    endpoints: list[Endpoint],
    on_started: Callable[[], None] | None,
    log_level: str,
    supervise: Supervised | None,
) -> int:
    sockets = [e.sock or reserve(e.host, e.port, e.flag) for e in endpoints]
    servers: list[_Server] = []
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    tasks = []
    for endpoint, sock in zip(endpoints, sockets, strict=True):  # each once the previous is up
        server = _Server(
            uvicorn.Config(
                endpoint.app,
                host=endpoint.host,
                port=endpoint.port,
                log_level=log_level,
                lifespan="on",
                # An open browser tab keeps the web UI's event stream open: without a bound,
                # Ctrl-C / SIGTERM would wait for every tab to close.
                timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS,
                **endpoint.tls,
            )
        )
        servers.append(server)
        tasks.append(asyncio.create_task(server.serve(sockets=[sock])))
        while not server.started:
            if tasks[-1].done():
                await tasks[-1]  # surfaces the start-up error
                raise SystemExit(f"{endpoint.name} failed to start on port {endpoint.port}")
            await asyncio.sleep(0.05)
    if on_started:
        on_started()
    waiter = asyncio.create_task(stop.wait())
    supervised = asyncio.create_task(supervise()) if supervise else None
    watched = [waiter, *tasks, *([supervised] if supervised else [])]
    await asyncio.wait(watched, return_when=asyncio.FIRST_COMPLETED)
    status = 0
    if supervised is not None:
        if supervised.done() and not supervised.cancelled():
            status = supervised.result()
        else:
            supervised.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await supervised
    for server in reversed(servers):
        server.should_exit = True
    await asyncio.gather(*tasks, return_exceptions=True)
    waiter.cancel()
    return status
