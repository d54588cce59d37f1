"""Faults the serving stack survives, each with real processes on loopback."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator

import httpx
import openai
import pytest

from tests.integration.cluster import Cluster, Process, free_port, registered, wait_for

MODEL = "palestra-tiny"
LONG = {
    "model": MODEL,
    "messages": [{"role": "user", "content": "Who are you?"}],
    "max_tokens": 400,
    "ignore_eos": True,
    "temperature": 1.0,
    "stream": True,
}


@pytest.fixture
def cluster() -> Iterator[Cluster]:
    running = Cluster()
    try:
        yield running
    finally:
        running.stop()


def queue_length(url: str) -> int:
    return int(httpx.get(url + "/status", timeout=5).json()["queue_length"])


def test_worker_killed_mid_stream(cluster: Cluster) -> None:
    controller = cluster.controller()
    workers = [cluster.worker(controller.url), cluster.worker(controller.url)]
    wait_for(registered(controller, 2), 30, "two workers")
    api = cluster.api(controller.url)
    events: list[str] = []
    with httpx.stream("POST", api.url + "/v1/chat/completions", json=LONG, timeout=30) as response:
        lines = response.iter_lines()
        events.append(next(line for line in lines if line.startswith("data: ")))
        busy = next(w for w in workers if queue_length(w.url) > 0)
        busy.kill()
        killed_at = time.monotonic()
        events.extend(line for line in lines if line.startswith("data: "))
    assert time.monotonic() - killed_at < 10
    assert events[-1] == "data: [DONE]"
    error = json.loads(events[-2][6:])["error"]
    assert error["code"] == "worker_failed" and busy.url in error["message"]
    rows = httpx.get(controller.url + "/workers").json()
    assert [r["address"] for r in rows] == [w.url for w in workers if w is not busy]
    client = openai.OpenAI(base_url=api.url + "/v1", api_key="x", max_retries=0)
    reply = client.chat.completions.create(
        model=MODEL, temperature=0, messages=[{"role": "user", "content": "Hello!"}]
    )
    assert "Palestra" in (reply.choices[0].message.content or "")


def test_dead_worker_before_first_byte_is_retried_elsewhere(cluster: Cluster) -> None:
    controller = cluster.controller(expiry=60)
    alive = cluster.worker(controller.url, heartbeat=1.0)
    dead = cluster.worker(controller.url, heartbeat=1.0)
    wait_for(registered(controller, 2), 30, "two workers")
    api = cluster.api(controller.url)
    dead.kill()  # still in the table (expiry 60 s): the API server must route around it
    client = openai.OpenAI(base_url=api.url + "/v1", api_key="x", max_retries=0)
    for _ in range(3):
        reply = client.chat.completions.create(
            model=MODEL, temperature=0, messages=[{"role": "user", "content": "Hi!"}]
        )
        assert reply.choices[0].message.content
    assert [r["address"] for r in httpx.get(controller.url + "/workers").json()] == [alive.url]


def test_only_worker_dead_is_a_503(cluster: Cluster) -> None:
    controller = cluster.controller(expiry=60)
    worker = cluster.worker(controller.url)
    wait_for(registered(controller, 1), 30, "worker")
    api = cluster.api(controller.url)
    worker.kill()
    response = httpx.post(
        api.url + "/v1/chat/completions",
        timeout=30,
        json={"model": MODEL, "messages": [{"role": "user", "content": "Hi"}]},
    )
    assert response.status_code == 503
    assert "no live worker" in response.json()["error"]["message"]
    assert httpx.get(api.url + "/v1/models").json()["data"] == []


def test_controller_restart_and_worker_before_controller(cluster: Cluster) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    worker = cluster.worker(url, heartbeat=1.0, wait_ready=False)  # no controller yet
    wait_for(lambda: httpx.get(worker.url + "/status", timeout=2).status_code == 200, 90, "worker")
    controller = cluster.controller(port=port)
    wait_for(registered(controller, 1), 30, "registration once the controller is up")
    controller.kill()
    restarted = cluster.controller(port=port)
    started = time.monotonic()
    wait_for(registered(restarted, 1), 30, "re-registration after the restart")
    assert time.monotonic() - started < 2.5  # within about one heartbeat interval


def test_overloaded_worker_answers_429(cluster: Cluster) -> None:
    controller = cluster.controller()
    worker = cluster.worker(controller.url, "--limit-concurrency", "1", "--max-queue", "0")
    wait_for(registered(controller, 1), 30, "worker")
    api = cluster.api(controller.url)
    opened = threading.Event()

    def hold() -> None:
        with httpx.stream(
            "POST", api.url + "/v1/chat/completions", json=LONG, timeout=60
        ) as response:
            for line in response.iter_lines():
                if line.startswith("data: "):
                    opened.set()

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        assert opened.wait(30)
        response = httpx.post(
            api.url + "/v1/chat/completions",
            timeout=30,
            json={"model": MODEL, "messages": [{"role": "user", "content": "Hi"}]},
        )
        assert response.status_code == 429
        assert response.json()["error"]["type"] == "overloaded_error"
        assert int(response.headers["retry-after"]) >= 1  # the worker's estimate, passed on
        direct = httpx.post(worker.url + "/generate", json={"model": MODEL, "prompt": "x"})
        assert direct.status_code == 429
        assert direct.headers["retry-after"] == response.headers["retry-after"]
    finally:
        holder.join(60)


@pytest.fixture(scope="module")
def slow_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Process, Process]]:
    """A scripted worker whose one reply takes 75 s to write (1,500 words, 0.05 s apart),
    behind an API server: (worker, api)."""
    script = tmp_path_factory.mktemp("slow") / "slow.json"
    words = " ".join(f"w{i}" for i in range(1500))
    script.write_text(json.dumps({"model_name": "slow", "replies": [words], "delay": 0.05}))
    running = Cluster()
    try:
        controller = running.controller()
        worker = running.worker(
            controller.url, "--backend", "scripted", "--model-path", str(script)
        )
        wait_for(registered(controller, 1), 30, "worker")
        yield worker, running.api(controller.url)
    finally:
        running.stop()


@pytest.mark.parametrize(
    ("path", "body"),
    [
        (
            "/v1/chat/completions",
            {"messages": [{"role": "user", "content": "Go"}], "max_tokens": 1500},
        ),
        ("/v1/completions", {"prompt": "Go", "max_tokens": 1500}),
        ("/v1/responses", {"input": "Go", "max_output_tokens": 1500}),
        ("/v1/messages", {"messages": [{"role": "user", "content": "Go"}], "max_tokens": 1500}),
    ],
)
def test_client_disconnect_stops_generation(
    slow_cluster: tuple[Process, Process], path: str, body: dict[str, object]
) -> None:
    """The client leaves after one event of the 75 s reply: the worker's slot is free
    again long before (within the 30 s waited here)."""
    worker, api = slow_cluster
    wait_for(lambda: queue_length(worker.url) == 0, 30, "the worker to be idle")
    request = {"model": "slow", "stream": True, **body}
    with httpx.stream("POST", api.url + path, json=request, timeout=30) as response:
        assert response.status_code == 200, response.read()
        lines = response.iter_lines()  # kept: a dropped iterator closes the connection
        next(line for line in lines if line.startswith("data: "))
        assert queue_length(worker.url) == 1  # still writing while the client reads
    wait_for(lambda: queue_length(worker.url) == 0, 30, "the worker to stop generating")


def test_queued_request_whose_client_left_never_runs(cluster: Cluster) -> None:
    controller = cluster.controller()
    worker = cluster.worker(controller.url, "--limit-concurrency", "1", "--max-queue", "4")
    wait_for(registered(controller, 1), 30, "worker")
    api = cluster.api(controller.url)
    with httpx.stream("POST", api.url + "/v1/chat/completions", json=LONG, timeout=30) as holder:
        lines = holder.iter_lines()  # kept: a dropped iterator closes the connection
        next(line for line in lines if line.startswith("data: "))
        with pytest.raises(httpx.ReadTimeout):  # queued behind the holder, then gives up
            httpx.post(
                api.url + "/v1/chat/completions",
                json={**LONG, "stream": False},
                timeout=httpx.Timeout(30, read=0.5),
            )
        wait_for(lambda: queue_length(worker.url) == 1, 30, "the abandoned request to leave")
    wait_for(lambda: queue_length(worker.url) == 0, 30, "the worker to go idle")
    metrics = httpx.get(worker.url + "/metrics").text
    assert 'palestra_worker_requests_total{endpoint="/generate",status="499"} 1.0' in metrics
    assert 'palestra_worker_requests_total{endpoint="/generate",status="200"} 1.0' in metrics


def test_api_keys(cluster: Cluster) -> None:
    controller = cluster.controller()
    cluster.worker(controller.url)
    wait_for(registered(controller, 1), 30, "worker")
    api = cluster.api(
        controller.url, "--api-keys", "k1,k2", "--allowed-origins", "http://ui.example"
    )
    preflight = httpx.options(
        api.url + "/v1/chat/completions",
        headers={
            "origin": "http://ui.example",
            "access-control-request-method": "POST",
            "access-control-request-headers": "authorization,content-type",
        },
    )
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == "http://ui.example"
    assert httpx.get(api.url + "/metrics").status_code == 200  # scrapes need no key
    missing = httpx.get(api.url + "/v1/models")
    assert missing.status_code == 401 and missing.json()["error"]["code"] == "invalid_api_key"
    wrong = httpx.get(api.url + "/v1/models", headers={"authorization": "Bearer nope"})
    assert wrong.status_code == 401
    client = openai.OpenAI(base_url=api.url + "/v1", api_key="k2", max_retries=0)
    assert [m.id for m in client.models.list().data] == [MODEL]
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=api.url + "/v1", api_key="bad", max_retries=0).models.list()
