"""A vote the page acknowledged survives a kill -9 of the web server: `palestra webui`
with two scripted API models, a battle voted in Chromium, then SIGKILL, then the store."""

from __future__ import annotations

import json
import signal
import subprocess
from pathlib import Path
from typing import Any

import httpx

from palestra.arena.store import ArenaStore
from tests.e2e.test_webui import wait_answered
from tests.fakes.openai_server import build_openai_app
from tests.fakes.server import serve_in_thread
from tests.integration.cluster import CLI, free_port, wait_for


def test_acknowledged_vote_survives_kill_9(page: Any, tmp_path: Path) -> None:
    with serve_in_thread(build_openai_app()) as fake_url:
        base = fake_url + "/v1"
        endpoints = {name: {"model_name": name, "api_base": base} for name in ("left", "right")}
        (tmp_path / "endpoints.json").write_text(json.dumps(endpoints))
        port, store = free_port(), tmp_path / "votes.db"
        server = subprocess.Popen(
            [*CLI, "webui", "--api-base", f"http://127.0.0.1:{free_port()}/v1",
             "--register-api-endpoint-file", str(tmp_path / "endpoints.json"),
             "--store", str(store), "--port", str(port)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            url = f"http://127.0.0.1:{port}"
            wait_for(lambda: httpx.get(url, timeout=2).status_code == 200, 60, "web UI")
            page.goto(url)
            box = page.locator("#battle-input textarea")
            box.fill("Which of you is better?")
            box.press("Enter")
            for side in ("a", "b"):
                page.locator(f"#battle-chatbot-{side}").get_by_text("heard:").wait_for()
            wait_answered(page, "battle")
            page.locator("#battle-vote-b").click()
            page.locator("#battle-notice").get_by_text("vote recorded").wait_for()
            server.send_signal(signal.SIGKILL)  # no chance to flush or clean up
            server.wait(10)
        finally:
            if server.poll() is None:
                server.kill()
    (vote,) = ArenaStore(store).events_of("rightvote")
    assert set(vote.models) == {"left", "right"} and vote.shown == ["", ""]
    assert [s["messages"][0][1] for s in vote.states] == ["Which of you is better?"] * 2
