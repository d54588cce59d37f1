"""Real Palestra processes on loopback ports for integration tests: a controller, workers
and an API server started as `palestra ...` subprocesses, stopped (or killed) on demand."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

CLI = [sys.executable, "-m", "palestra.cli.main"]


def children(parent: int, marker: bytes) -> set[int]:
    """The live processes (zombies left out) whose parent is `parent` and whose command
    line contains `marker`: a worker `palestra serve` runs, an engine process."""
    found = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            state, ppid = stat.read_text().rsplit(")", 1)[1].split()[:2]
            command = (stat.parent / "cmdline").read_bytes()
            if int(ppid) == parent and state != "Z" and marker in command:
                found.add(int(stat.parent.name))
    return found


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(check: Callable[[], bool], timeout: float, what: str, log: Path | None = None) -> None:
    """Poll `check` until it holds; on timeout, the error ends with the tail of `log`
    (the output of the process waited for), so a CI failure says why."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    tail = log.read_text(errors="replace")[-4000:] if log and log.is_file() else ""
    raise TimeoutError(
        f"timed out after {timeout:.0f}s waiting for {what}"
        + (f"; its log:\n{tail}" if tail else "")
    )


@dataclass
class Process:
    name: str
    url: str
    popen: subprocess.Popen

    def kill(self) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGKILL)
            self.popen.wait(10)

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGINT)
            try:
                self.popen.wait(15)
            except subprocess.TimeoutExpired:
                self.kill()


@dataclass
class Cluster:
    processes: list[Process] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)  # on top of this process's environment
    scheme: str = "http"  # https: the servers were given TLS options
    verify: Any = True  # the CA the readiness checks trust, with https

    def _start(self, name: str, args: list[str], port: int, ready: str) -> Process:
        env = {**os.environ, "PYTHONUNBUFFERED": "1", **self.env}
        popen = subprocess.Popen(
            [*CLI, *args, "--port", str(port)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        process = Process(name, f"{self.scheme}://127.0.0.1:{port}", popen)
        self.processes.append(process)

        def ready_now() -> bool:
            answer = httpx.get(process.url + ready, timeout=2, verify=self.verify)
            return popen.poll() is None and answer.status_code < 500

        wait_for(ready_now, 90, name)
        return process

    def controller(self, *extra: str, port: int | None = None, expiry: float = 30.0) -> Process:
        return self._start(
            "controller",
            ["controller", "--expiry", str(expiry), *extra],
            port or free_port(),
            "/health",
        )

    def worker(
        self, controller: str, *extra: str, heartbeat: float = 1.0, wait_ready: bool = True
    ) -> Process:
        port = free_port()
        backend = extra[extra.index("--backend") + 1] if "--backend" in extra else "hf"
        device = ["--device", "cpu"] if backend == "hf" else []  # an option of hf only
        args = [
            "worker",
            "--controller-address",
            controller,
            *device,
            "--heartbeat-interval",
            str(heartbeat),
            *extra,
        ]
        if not wait_ready:
            popen = subprocess.Popen(
                [*CLI, *args, "--port", str(port)],
                env={**os.environ, **self.env},
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            process = Process("worker", f"{self.scheme}://127.0.0.1:{port}", popen)
            self.processes.append(process)
            return process
        return self._start("worker", args, port, "/status")

    def api(self, controller: str, *extra: str) -> Process:
        return self._start(
            "api", ["api", "--controller-address", controller, *extra], free_port(), "/docs"
        )

    def stop(self) -> None:
        for process in reversed(self.processes):
            process.stop()


def registered(controller: Process, count: int) -> Callable[[], bool]:
    return lambda: len(httpx.get(controller.url + "/workers", timeout=2).json()) == count


@contextmanager
def scripted_api(script: Path, *api_options: str) -> Iterator[Process]:
    """A controller, a scripted-backend worker running `script` and an API server."""
    cluster = Cluster()
    try:
        controller = cluster.controller()
        cluster.worker(controller.url, "--backend", "scripted", "--model-path", str(script))
        wait_for(registered(controller, 1), 30, "scripted worker")
        yield cluster.api(controller.url, *api_options)
    finally:
        cluster.stop()
