"""Running one or several ASGI apps with uvicorn in one process, stopping them all cleanly
on Ctrl-C or SIGTERM, optionally alongside a supervised task whose end stops them too
(`palestra serve` runs the controller and API server this way, with the model worker in a
child process)."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Callable, Coroutine, Generator
from dataclasses import dataclass
from typing import Any

import uvicorn
from fastapi import FastAPI


@dataclass(frozen=True)
class Endpoint:
    name: str
    app: FastAPI
    host: str
    port: int


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
    return asyncio.run(_serve_all(endpoints, on_started, log_level, supervise))


async def _serve_all(
    endpoints: list[Endpoint],
    on_started: Callable[[], None] | None,
    log_level: str,
    supervise: Supervised | None,
) -> int:
    servers: list[_Server] = []
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    tasks = []
    for endpoint in endpoints:  # in order: each starts once the previous is up
        server = _Server(
            uvicorn.Config(
                endpoint.app,
                host=endpoint.host,
                port=endpoint.port,
                log_level=log_level,
                lifespan="on",
            )
        )
        servers.append(server)
        tasks.append(asyncio.create_task(server.serve()))
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
