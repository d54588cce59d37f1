"""An arena of hosted models only, from FastChat's LM-Arena demo endpoint file as it is: an
Azure OpenAI deployment and a reasoning model (both on a loopback stand-in as strict as the
services) battle in Chromium through `palestra webui`, and the vote is stored."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import httpx

from palestra.arena.store import ArenaStore
from tests.e2e.test_webui import wait_answered
from tests.fakes.openai_server import build_openai_app
from tests.fakes.server import serve_in_thread
from tests.integration.cluster import CLI, free_port, wait_for
from tests.unit.backends.test_providers import demo_file

DEMO_MODELS = {"Checklist-GPT-4-0125-Preview", "Checklist-GPT-o1"}


def test_a_battle_between_the_demo_files_models(page: Any, tmp_path: Path) -> None:
    app = build_openai_app()
    with serve_in_thread(app) as fake_url:
        file = demo_file(tmp_path, fake_url)
        port, store, log = free_port(), tmp_path / "votes.db", tmp_path / "webui.log"
        with log.open("w") as output:
            server = subprocess.Popen(
                [*CLI, "webui", "--register-api-endpoint-file", str(file), "--store", str(store),
                 "--port", str(port)],
                stdout=output, stderr=subprocess.STDOUT,
            )  # fmt: skip
        try:
            url = f"http://127.0.0.1:{port}"
            wait_for(lambda: httpx.get(url, timeout=2).status_code == 200, 60, "web UI", log)
            page.goto(url)
            box = page.locator("#battle-input textarea")
            box.fill("Is my checklist complete?")
            box.press("Enter")
            for side in ("a", "b"):
                page.locator(f"#battle-chatbot-{side}").get_by_text("heard:").wait_for()
            wait_answered(page, "battle")
            page.locator("#battle-vote-a").click()
            page.locator("#battle-notice").get_by_text("vote recorded").wait_for()
            revealed = page.locator("#battle-reveal").inner_text()
            assert all(f": {model}" in revealed for model in DEMO_MODELS)
            # No outage notice; wait out Gradio's elapsed-time badge ("0.3s") that the box
            # shows while an update to it is still in flight.
            outages = page.locator("#battle-outages")
            wait_for(lambda: outages.inner_text().strip() == "", 10, "no outage notice")
        finally:
            server.terminate()
            server.wait(30)
    (vote,) = ArenaStore(store).events_of("leftvote")
    assert set(vote.models) == DEMO_MODELS and vote.shown == ["", ""]
    replies = {state["model_name"]: state["messages"][-1][1] for state in vote.states}
    assert replies == {m: f"Scripted {m} heard: Is my checklist complete?" for m in DEMO_MODELS}
    reasoning = [b for b in app.state.bodies if b["model"] == "Checklist-GPT-o1"]
    assert reasoning and all("temperature" not in b for b in reasoning)
    assert "azure-secret" not in log.read_text()
