"""A worker's --keep-alive: the model is let go after the idle time, the worker stays
registered, and the next request loads it again and is answered; while a backend closes
(an engine process exiting), /health already counts the unload it shows."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from palestra.backends.scripted import ScriptedBackend
from palestra.serve.worker.keep_alive import KeepAlive, parse_duration
from tests.integration.cluster import Cluster, Process, registered, wait_for


@pytest.fixture(scope="module")
def served() -> Iterator[tuple[Process, Process]]:
    cluster = Cluster()
    try:
        controller = cluster.controller()
        worker = cluster.worker(controller.url, "--keep-alive", "1s")
        wait_for(registered(controller, 1), 30, "worker registration")
        yield worker, cluster.api(controller.url)
    finally:
        cluster.stop()


def _keep(worker: Process) -> dict[str, Any]:
    detail: dict[str, Any] = httpx.get(worker.url + "/health", timeout=10).json()["models"][0]
    return detail


def _ask(api: Process) -> str:
    body = {
        "model": "palestra-tiny",
        "messages": [{"role": "user", "content": "What is the capital of Italy?"}],
        "temperature": 0,
        "max_tokens": 16,
    }
    reply = httpx.post(api.url + "/v1/chat/completions", json=body, timeout=120)
    assert reply.status_code == 200, reply.text
    return str(reply.json()["choices"][0]["message"]["content"])


def test_an_idle_model_is_let_go_and_comes_back(served: tuple[Process, Process]) -> None:
    worker, api = served
    first = _ask(api)
    wait_for(lambda: not _keep(worker)["loaded"], 30, "the idle model unloaded")
    assert _keep(worker)["unloads"] >= 1
    models = httpx.get(api.url + "/v1/models", timeout=10).json()["data"]
    assert [m["id"] for m in models] == ["palestra-tiny"]  # still offered while unloaded
    assert _ask(api) == first  # loaded again, same greedy answer
    state = _keep(worker)
    assert state["loads"] >= 2 and state["keep_alive_s"] == 1.0


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("300", 300.0), ("90s", 90.0), ("5m", 300.0), ("1h", 3600.0), ("-1", None)],
)
def test_durations_as_ollama_spells_them(text: str, seconds: float | None) -> None:
    assert parse_duration(text) == seconds


def test_a_bad_duration_is_one_line() -> None:
    with pytest.raises(ValueError, match="give seconds or 90s, 5m, 1h"):
        parse_duration("soon")


class SlowToClose(ScriptedBackend):
    """A backend whose close waits, as an engine process's exit does."""

    def __init__(self) -> None:
        super().__init__(["Hi."], "slow")
        self.closing = asyncio.Event()
        self.may_close = asyncio.Event()

    async def close(self) -> None:
        self.closing.set()
        await self.may_close.wait()


def test_health_never_shows_an_unloaded_model_with_no_unloads() -> None:
    backend = SlowToClose()
    keep = KeepAlive(lambda: backend, seconds=0.0)

    async def unload() -> tuple[bool, int, bool]:
        task = asyncio.create_task(keep.unload_if_idle())
        await backend.closing.wait()  # mid-close: what /health would read now
        seen = (keep.loaded, keep.unloads, task.done())
        backend.may_close.set()
        assert await task
        return seen

    assert asyncio.run(unload()) == (False, 1, False)
    assert keep.unloads == 1
