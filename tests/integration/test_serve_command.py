"""`palestra serve` keeps its model worker in a child process, and the worker its engine
in one of its own: the worker registers and serves, neither outlives the command, even
when the command is killed outright, and a worker that dies is started again while the
API stays up."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
from pathlib import Path

import httpx

from tests.integration.cluster import CLI, children, free_port, wait_for


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def _serve(api: int, *options: str, log: Path | None = None) -> subprocess.Popen[str]:
    """`palestra serve` on API port `api`, once its worker has registered; its messages go
    to `log` when given."""
    with log.open("w") if log else contextlib.nullcontext(subprocess.DEVNULL) as messages:
        serve = subprocess.Popen(
            [*CLI, "serve", "--port", str(api), *options],
            stdout=subprocess.PIPE, stderr=messages, text=True,
        )  # fmt: skip
    models_url = f"http://127.0.0.1:{api}/v1/models"
    try:
        wait_for(lambda: _answers(models_url) and httpx.get(models_url).json()["data"], 90,
                 "the worker to register")  # fmt: skip
    except TimeoutError:
        serve.kill()
        raise
    return serve


def test_killed_serve_takes_its_worker_down(tmp_path: Path) -> None:
    """Also: with a cluster token, serve's worker gets it (it registers and answers) and
    its internal ports answer only the token's holders."""
    api, controller, worker = free_port(), free_port(), free_port()
    (tmp_path / "token").write_text("serve-token-1\n")
    serve = _serve(
        api, "--controller-port", str(controller), "--worker-port", str(worker), "--no-webui",
        "--cluster-token-file", str(tmp_path / "token"),
    )  # fmt: skip
    models_url = f"http://127.0.0.1:{api}/v1/models"
    try:
        assert httpx.get(models_url).json()["data"][0]["id"] == "palestra-tiny"
        (health,) = httpx.get(f"http://127.0.0.1:{worker}/health").json()["models"]
        engine = health["engine_process"]  # a worker runs its engine apart by default
        assert not _gone(engine)
        holder = {"Authorization": "Bearer serve-token-1"}
        for internal in (f"{controller}/workers", f"{worker}/status"):
            assert httpx.get(f"http://127.0.0.1:{internal}").status_code == 401
            assert httpx.get(f"http://127.0.0.1:{internal}", headers=holder).status_code == 200
        serve.kill()  # SIGKILL: no chance to clean up
        serve.wait(10)
        wait_for(lambda: not _answers(f"http://127.0.0.1:{worker}/health"), 30, "worker exit")
        wait_for(lambda: _gone(engine), 30, "the engine process to exit")
    finally:
        if serve.poll() is None:
            serve.kill()


def _workers_of(serve: subprocess.Popen[str]) -> set[int]:
    """The `palestra worker` processes `serve` runs."""
    return children(serve.pid, b"worker")


def test_a_worker_that_dies_is_started_again_while_the_api_stays_up(tmp_path: Path) -> None:
    api, worker = free_port(), free_port()
    log = tmp_path / "serve.log"
    serve = _serve(api, "--worker-port", str(worker), "--no-webui", log=log)
    try:
        # serve restarts a worker it has announced (one that dies before is a failed start)
        assert serve.stdout is not None
        for line in serve.stdout:
            if "Ctrl-C stops everything." in line:
                break
        (first,) = _workers_of(serve)
        (health,) = httpx.get(f"http://127.0.0.1:{worker}/health").json()["models"]
        engine = health["engine_process"]
        os.kill(first, signal.SIGKILL)  # as the out-of-memory killer would
        wait_for(lambda: first not in _workers_of(serve), 30, "the worker to die")
        assert _answers(f"http://127.0.0.1:{api}/v1/models")  # the API stays up
        # Meanwhile its model is to be retried (503, Retry-After: the SDKs wait and retry),
        # not unknown (404, which they do not retry).
        body = {"model": "palestra-tiny", "messages": [{"role": "user", "content": "Hi"}]}
        for _ in range(2):  # the request that finds it dead, and one after
            meanwhile = httpx.post(f"http://127.0.0.1:{api}/v1/chat/completions", json=body)
            assert meanwhile.status_code == 503, meanwhile.text
            assert meanwhile.json()["error"]["type"] == "service_unavailable_error"
            assert meanwhile.headers["retry-after"] == "5"
        wait_for(lambda: _workers_of(serve) - {first}, 30, "a new worker", log)
        wait_for(lambda: _answers(f"http://127.0.0.1:{worker}/health"), 90, "it to serve", log)
        reply = wait_for_reply(api)
        assert reply["choices"][0]["message"]["content"]
        assert serve.poll() is None
        wait_for(lambda: _gone(engine), 30, "the dead worker's engine process to exit")
        assert "the worker stopped (killed by SIGKILL); starting it again" in log.read_text()
    finally:
        serve.send_signal(signal.SIGINT)
        try:
            serve.wait(30)
        except subprocess.TimeoutExpired:
            serve.kill()


def wait_for_reply(api: int) -> dict[str, object]:
    """A chat reply from the API, once the controller routes to the new worker (the dead
    one's registration may answer first)."""
    body = {"model": "palestra-tiny", "max_tokens": 8,
            "messages": [{"role": "user", "content": "Hi"}]}  # fmt: skip
    replies: list[dict[str, object]] = []

    def answered() -> bool:
        response = httpx.post(f"http://127.0.0.1:{api}/v1/chat/completions", json=body, timeout=30)
        if response.status_code == 200:
            replies.append(response.json())
        return bool(replies)

    wait_for(answered, 60, "a chat reply")
    return replies[0]


def test_worker_options_reach_the_worker_from_the_line_and_a_config_file(tmp_path: Path) -> None:
    """Every worker option is a serve option, from the command line or `--config`; the
    internal ports default to free ones; a taken port is one line naming its option."""
    config = tmp_path / "serve.toml"
    config.write_text(
        'limit-concurrency = 2\nmax_queue = 7\ndtype = "float32"\nno_webui = true\n'
        "stream-interval-ms = 3600000\n"
    )
    api = free_port()
    serve = _serve(
        api, "--config", str(config), "--max-batch-size", "3", "--max-queue", "5",
        "--stream-interval", "4",
    )  # fmt: skip
    try:
        assert serve.stdout is not None
        lines = [serve.stdout.readline() for _ in range(5)]
        address = {line.split()[0]: line.split()[-1] for line in lines[1:] if line.strip()}
        assert "web UI" not in "".join(lines)  # no_webui from the file
        (row,) = httpx.get(address["controller"] + "/workers").json()
        assert row["capacity"] == 2  # limit-concurrency from the file
        health = httpx.get(address["worker"] + "/health").json()["models"][0]
        assert health["max_batch_size"] == 3 and health["dtype"] == "float32"
        status = httpx.get(address["worker"] + "/status").json()
        assert status["capacity"] == 2
        # A frame waits an hour (the file) and four tokens (the line): the first text at
        # once, then the rest with the end.
        body = {"model": "palestra-tiny", "max_tokens": 17, "ignore_eos": True, "stream": True,
                "messages": [{"role": "user", "content": "Hello! Who are you?"}]}  # fmt: skip
        with httpx.stream("POST", f"http://127.0.0.1:{api}/v1/chat/completions", json=body) as r:
            data = [json.loads(line[6:]) for line in r.iter_lines() if line.startswith("data: {")]
        texts = [d["choices"][0]["delta"].get("content") for d in data if d["choices"]]
        assert len([t for t in texts if t]) == 2
        taken = subprocess.run(
            [*CLI, "serve", "--port", str(api), "--no-webui"],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert taken.returncode == 2
        errors = [line for line in taken.stderr.splitlines() if line.strip()]
        assert len(errors) == 1 and f"port {api}" in errors[0] and "--port" in errors[0]
    finally:
        serve.send_signal(signal.SIGINT)
        serve.wait(30)
    assert serve.returncode == 0


def test_an_option_of_another_backend_is_refused_with_the_right_list() -> None:
    result = subprocess.run(
        [*CLI, "serve", "--backend", "llamacpp", "--load-8bit", "--no-webui"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "--load-8bit is an option of the hf backend" in result.stderr
    assert "llamacpp takes: --parallel, --threads, --context-length" in result.stderr


def test_the_banner_names_only_serves_own_worker_models() -> None:
    """Another worker registered with the same controller (a stale one from an earlier run
    on the port) is not announced as served by this `palestra serve`."""
    import asyncio

    import httpx
    from fastapi import FastAPI

    from palestra.serve.launcher import _own_models
    from tests.fakes.server import serve_in_thread

    listed: list[str] = ["stale-model"]
    stand_in = FastAPI()
    stand_in.get("/health")(lambda: {})
    stand_in.get("/status")(lambda: {"models": [{"name": "palestra-tiny"}]})
    stand_in.get("/models")(lambda: {"models": listed})

    async def announced(url: str) -> list[str]:
        async with httpx.AsyncClient(timeout=2) as client:
            return await _own_models(client, url, url)

    with serve_in_thread(stand_in) as url:
        assert asyncio.run(announced(url)) == []  # not registered yet: no banner
        listed.append("palestra-tiny")
        assert asyncio.run(announced(url)) == ["palestra-tiny"]
