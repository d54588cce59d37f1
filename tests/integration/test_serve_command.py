"""`palestra serve` keeps its model worker in a child process: the worker registers and
serves, and it never outlives the command, even when the command is killed outright."""

from __future__ import annotations

import subprocess

import httpx

from tests.integration.cluster import CLI, free_port, wait_for


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def test_killed_serve_takes_its_worker_down() -> None:
    api, controller, worker = free_port(), free_port(), free_port()
    serve = subprocess.Popen(
        [*CLI, "serve", "--port", str(api), "--controller-port", str(controller),
         "--worker-port", str(worker), "--no-webui"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )  # fmt: skip
    try:
        models_url = f"http://127.0.0.1:{api}/v1/models"
        wait_for(lambda: _answers(models_url) and httpx.get(models_url).json()["data"], 90,
                 "the worker to register")  # fmt: skip
        assert httpx.get(models_url).json()["data"][0]["id"] == "palestra-tiny"
        assert _answers(f"http://127.0.0.1:{worker}/health")
        serve.kill()  # SIGKILL: no chance to clean up
        serve.wait(10)
        wait_for(lambda: not _answers(f"http://127.0.0.1:{worker}/health"), 15, "worker exit")
    finally:
        if serve.poll() is None:
            serve.kill()
