"""The web UI in a real browser (Debian's Chromium through Playwright), served by
`palestra serve` with the bundled model and, from an API endpoint file, scripted
OpenAI-compatible models (`tests/fakes/openai_server.py`) standing in for hosted ones:
streamed chat, stop, images for a vision model, inert HTML, an anonymous battle with a
vote, the names revealed and the vote in the store, the leaderboard updating."""

from __future__ import annotations

import json
import os
import re
import sqlite3
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.fakes.openai_server import build_openai_app
from tests.fakes.server import serve_in_thread
from tests.integration.cluster import CLI, free_port, wait_for

SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
PNG = (  # a 1x1 PNG
    b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00"
    b"\x1f\x15\xc4\x89\x00\x00\x00\rIDATx\x9cc\xf8\xff\xff?\x00\x05\xfe\x02\xfe\xa7\x35\x81"
    b"\x84\x00\x00\x00\x00IEND\xaeB`\x82"
)


@dataclass
class Arena:
    url: str
    store: Path

    def events(self, kind: str) -> list[dict[str, Any]]:
        with sqlite3.connect(self.store) as db:
            rows = db.execute(
                "SELECT models, shown, flags, states FROM arena_events WHERE type = ? ORDER BY id",
                (kind,),
            ).fetchall()
        return [
            {"models": json.loads(m), "shown": json.loads(s), "flags": json.loads(f),
             "states": json.loads(st)}
            for m, s, f, st in rows
        ]  # fmt: skip


def screenshot(page: Any, name: str) -> None:
    if os.environ.get("PALESTRA_SCREENSHOTS"):  # `make screenshots` refreshes the docs
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOTS / f"{name}.png"))


@pytest.fixture(scope="module")
def arena(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Arena]:
    folder = tmp_path_factory.mktemp("arena")
    with serve_in_thread(build_openai_app()) as fake_url:
        base = fake_url + "/v1"
        endpoints = {
            "scripted": {"model_name": "scripted", "api_type": "openai", "api_base": base},
            "scripted-slow": {"model_name": "scripted-slow", "api_base": base},
            "scripted-vision": {"model_name": "scripted-vision", "api_base": base,
                                "vision-arena": True},
        }  # fmt: skip
        (folder / "endpoints.json").write_text(json.dumps(endpoints))
        # Battles between the bundled model and the plain scripted one only.
        config = {"outage_models": ["scripted-slow", "scripted-vision"]}
        (folder / "arena.json").write_text(json.dumps(config))
        # The scripted model names itself ("Scripted scripted heard: ..."): the Leaderboard
        # would drop every battle it is in as an identity leak.
        options = [
            *("--register-api-endpoint-file", str(folder / "endpoints.json")),
            *("--arena-config", str(folder / "arena.json")),
            "--keep-identity-leaks",
            # It echoes the labelling prompt, which names every category: all are stored.
            *("--category-judge", "scripted"),
        ]
        # The API serves the file's three hosted models beside the bundled one.
        with served_arena(folder, *options, models=4) as served:
            yield served


@contextmanager
def served_arena(folder: Path, *options: str, models: int) -> Iterator[Arena]:
    """`palestra serve` with `options` and a store in `folder`, once its API lists at least
    `models` models and its web UI answers; its output goes to folder/serve.log, whose
    tail ends a startup timeout's error."""
    ports = [free_port() for _ in range(4)]
    store = folder / "arena.db"
    log = folder / "serve.log"
    with log.open("w") as output:
        serve = subprocess.Popen(
            [*CLI, "serve", "--port", str(ports[0]), "--controller-port", str(ports[1]),
             "--worker-port", str(ports[2]), "--webui-port", str(ports[3]),
             "--store", str(store), *options],
            stdout=output, stderr=subprocess.STDOUT,
        )  # fmt: skip
        url = f"http://127.0.0.1:{ports[3]}"
        listing = f"http://127.0.0.1:{ports[0]}/v1/models"
        try:
            wait_for(
                lambda: len(httpx.get(listing, timeout=2).json()["data"]) >= models,
                180,
                "serve",
                log,
            )
            wait_for(lambda: httpx.get(url, timeout=2).status_code == 200, 60, "web UI", log)
            yield Arena(url, store)
        finally:
            serve.terminate()
            serve.wait(30)


def open_tab(page: Any, arena: Arena, name: str) -> None:
    page.goto(arena.url)
    page.get_by_role("tab", name=name).click()


def send(page: Any, prefix: str, text: str) -> None:
    box = page.locator(f"#{prefix}-input textarea")
    box.fill(text)
    box.press("Enter")


def send_until_shown(page: Any, prefix: str, text: str, shown: str) -> None:
    """Send, and send again once if the message never shows: right after a page load (a
    Leaderboard recompute in flight on 2 cores), Gradio can drop the first Enter (noted
    for the web UI issue: input is to be held, never lost)."""
    for _ in range(2):
        send(page, prefix, text)
        try:
            page.locator(shown).first.wait_for(timeout=10_000)
            return
        except Exception:  # Playwright's TimeoutError
            continue
    page.locator(shown).first.wait_for(timeout=10_000)


def wait_answered(page: Any, prefix: str) -> None:
    """Wait until both streams of a round have ended (the page then asks for a vote): a
    vote clicked while a stream still runs is stored, but the stream's last update
    replaces the vote's notice."""
    page.locator(f"#{prefix}-notice").get_by_text("vote for the better answer").wait_for(
        timeout=60_000
    )


def pick(page: Any, element_id: str, option: str) -> None:
    field = page.locator(f"#{element_id} input")
    field.click()
    page.locator("[data-testid=dropdown-option]:visible", has_text=option).filter(
        has=page.locator(f"text='{option}'")
    ).first.click()


def test_every_tab_is_there(page: Any, arena: Arena) -> None:
    page.goto(arena.url)
    for name in ("Arena (battle)", "Arena (side-by-side)", "Direct chat", "Leaderboard"):
        page.get_by_role("tab", name=name).wait_for(timeout=30_000)


def test_chat_streams_and_answers(page: Any, arena: Arena) -> None:
    open_tab(page, arena, "Direct chat")
    page.locator("#chat-model-card strong").get_by_text("palestra-tiny").wait_for()
    assert "3.7M-parameter chat model" in page.locator("#chat-model-card").inner_text()
    send_until_shown(page, "chat", "Hello! Who are you?", "#chat-chatbot .message.user")
    chatbot = page.locator("#chat-chatbot")

    def logged() -> list[dict[str, Any]]:
        return [e for e in arena.events("chat") if e["models"] == ["palestra-tiny"]]

    # As long as a battle round may take (wait_answered): in a full two-process run the
    # other process can hold both cores with a training test.
    wait_for(lambda: bool(logged()), 60, "the reply logged in the store")
    screenshot(page, "chat")  # the reply is complete once it is logged
    question, reply = logged()[-1]["states"][0]["messages"]
    assert question == ["user", "Hello! Who are you?"] and reply[0] == "assistant"
    # The page shows the reply the store logged (sampled at the chat's temperature 0.7:
    # usually "... I am Palestra Tiny ...", not always).
    chatbot.locator(".message.bot").get_by_text(reply[1].split("!")[0]).first.wait_for()
    page.locator("#chat-upvote").click()
    page.locator("#chat-notice").get_by_text("upvote recorded").wait_for()
    assert arena.events("upvote")[-1]["models"] == ["palestra-tiny"]
    replies = len(logged())
    page.locator("#chat-regenerate").click()  # the same question answered again
    wait_for(lambda: len(logged()) == replies + 1, 30, "the regenerated reply")
    messages = logged()[-1]["states"][0]["messages"]
    assert [m[0] for m in messages] == ["user", "assistant"] and messages[1][1]
    assert chatbot.locator(".message.user").count() == 1


def test_markdown_and_code_highlighting(page: Any, arena: Arena) -> None:
    open_tab(page, arena, "Direct chat")
    pick(page, "chat-model", "scripted")
    send(page, "chat", "\n**bold** and code:\n```python\nanswer = 42\n```")
    chatbot = page.locator("#chat-chatbot")
    chatbot.locator("strong", has_text="bold").last.wait_for(timeout=15_000)
    code = chatbot.locator("pre code").last
    code.wait_for()
    assert "answer = 42" in code.inner_text()
    assert code.locator("span").count() > 0  # highlighted into tokens


def test_stop_a_generation(page: Any, arena: Arena) -> None:
    open_tab(page, arena, "Direct chat")
    pick(page, "chat-model", "scripted-slow")
    page.locator("#chat-model-card strong").get_by_text("scripted-slow").wait_for()
    send(page, "chat", "Count slowly")
    chatbot = page.locator("#chat-chatbot")
    chatbot.get_by_text("word3", exact=False).wait_for(timeout=15_000)  # it streams
    assert "word40" not in chatbot.inner_text()
    page.locator("#chat-stop").click()
    page.wait_for_timeout(1500)
    stopped = chatbot.inner_text()
    page.wait_for_timeout(2000)
    assert chatbot.inner_text() == stopped and "word40" not in stopped
    wait_for(
        lambda: any(e["flags"].get("outcome") == "stopped" for e in arena.events("chat")),
        10,
        "the stopped reply in the store",
    )


def test_images_for_vision_models_and_inert_html(page: Any, arena: Arena, tmp_path: Path) -> None:
    image = tmp_path / "dot.png"
    image.write_bytes(PNG)
    open_tab(page, arena, "Direct chat")
    pick(page, "chat-model", "scripted-vision")
    page.locator("#chat-model-card").get_by_text("Accepts images").wait_for()
    page.locator("#chat-input input[type=file]").set_input_files(str(image))
    send(page, "chat", "What is in this picture?")
    page.locator("#chat-chatbot").get_by_text("I see 1 image(s).").wait_for(timeout=15_000)

    pick(page, "chat-model", "palestra-tiny")
    page.locator("#chat-input input[type=file]").set_input_files(str(image))
    send(page, "chat", "And this one?")
    page.locator("#chat-notice").get_by_text("does not accept images").wait_for()
    box = page.locator("#chat-input")  # the refused message is back in the box, not lost
    wait_for(
        lambda: (
            box.locator("textarea").input_value() == "And this one?"
            and box.locator(".thumbnail-item").count() == 1
        ),
        10,
        "the refused message back in the box",
    )

    open_tab(page, arena, "Direct chat")  # a fresh page: no image left attached
    pick(page, "chat-model", "scripted")
    attack = '<img src=x onerror="window.pwned=1"><script>window.pwned=2</script>'
    send(page, "chat", attack)
    page.locator("#chat-chatbot").get_by_text("Scripted scripted heard:").wait_for()
    page.wait_for_timeout(500)
    assert page.evaluate("window.pwned") is None


def test_battle_vote_reveals_names_and_is_stored(page: Any, arena: Arena) -> None:
    before = len(arena.events("leftvote"))
    open_tab(page, arena, "Arena (battle)")
    send(page, "battle", "What is 2 plus 3?")
    for side in ("a", "b"):
        page.locator(f"#battle-chatbot-{side} .message.bot").first.wait_for(timeout=30_000)
    wait_for(lambda: len(arena.events("chat")) > 0, 30, "chat events")
    assert page.locator("#battle-reveal").inner_text().strip() == ""  # still anonymous
    wait_answered(page, "battle")
    screenshot(page, "arena-battle")
    page.locator("#battle-vote-a").click()
    page.locator("#battle-notice").get_by_text("vote recorded").wait_for()
    revealed = page.locator("#battle-reveal").inner_text()
    votes = arena.events("leftvote")
    assert len(votes) == before + 1
    vote = votes[-1]
    assert set(vote["models"]) == {"palestra-tiny", "scripted"}
    assert vote["shown"] == ["", ""]  # anonymous
    assert f"Model A: {vote['models'][0]}" in revealed
    assert f"Model B: {vote['models'][1]}" in revealed
    assert "scripted" in vote["flags"]["identity_leak"]  # "Scripted scripted heard: ..."
    page.locator("#battle-vote-b").click()
    page.locator("#battle-notice").get_by_text("already voted").wait_for()
    assert len(arena.events("rightvote")) == 0


def test_side_by_side_names_models(page: Any, arena: Arena) -> None:
    open_tab(page, arena, "Arena (side-by-side)")
    pick(page, "sbs-model-a", "scripted")
    pick(page, "sbs-model-b", "palestra-tiny")
    send(page, "sbs", "Hi")
    page.locator("#sbs-reveal").get_by_text("Model A: scripted").wait_for()
    page.locator("#sbs-chatbot-a").get_by_text("Scripted scripted heard: Hi").wait_for()
    page.locator("#sbs-chatbot-b .message.bot").first.wait_for(timeout=30_000)
    wait_answered(page, "sbs")
    page.locator("#sbs-vote-tie").click()
    page.locator("#sbs-notice").get_by_text("vote recorded").wait_for()
    screenshot(page, "arena-side-by-side")
    vote = arena.events("tievote")[-1]
    assert vote["models"] == vote["shown"] == ["scripted", "palestra-tiny"]


def refresh_until(page: Any, text: str, seconds: int = 60) -> None:
    """Click Refresh until the board shows `text`: a page gets the last board at once
    while the next one is computed in the background (LiveBoard)."""
    table = page.locator("#leaderboard-table")
    for _ in range(seconds):
        try:
            table.get_by_text(text).wait_for(timeout=1_000)
            return
        except Exception:  # Playwright's TimeoutError: not refreshed yet
            page.locator("#leaderboard-refresh").click()
    raise AssertionError(f"the leaderboard never showed {text!r}: {table.inner_text()}")


def test_leaderboard_updates(page: Any, arena: Arena) -> None:
    open_tab(page, arena, "Leaderboard")
    table = page.locator("#leaderboard-table")
    refresh_until(page, "on 2 models")
    count = int(table.inner_text().split(" vote")[0].split()[-1])
    anonymous = [
        e for kind in ("leftvote", "rightvote", "tievote", "bothbad_vote")
        for e in arena.events(kind) if e["shown"] == ["", ""]
    ]  # fmt: skip
    assert count == len(anonymous)
    said = table.inner_text()  # the page says which filters ran
    assert f"{count} of " in said and "battles rated (anonymous battles only" in said
    assert "identity leaks dropped" not in said  # --keep-identity-leaks
    assert "palestra-tiny" in table.inner_text() and "scripted" in table.inner_text()
    for chart in ("win-rate", "counts"):  # the plotly heat maps render
        page.locator(f"#leaderboard-{chart} .js-plotly-plot").wait_for(timeout=30_000)
    screenshot(page, "leaderboard")
    open_tab(page, arena, "Arena (battle)")
    send_until_shown(page, "battle", "Name a colour.", "#battle-chatbot-a .message.user")
    for side in ("a", "b"):
        page.locator(f"#battle-chatbot-{side} .message.bot").first.wait_for(timeout=30_000)
    wait_answered(page, "battle")
    page.locator("#battle-vote-bothbad").click()
    page.locator("#battle-notice").get_by_text("vote recorded").wait_for()
    page.get_by_role("tab", name="Leaderboard").click()
    refresh_until(page, f"{count + 1} votes on")
    assert f"{count + 1} votes on 2 models" in table.inner_text()
    assert "Updated 20" in table.inner_text()
    page.locator("#leaderboard-ratings .js-plotly-plot").wait_for(timeout=30_000)  # intervals
    page.locator("#leaderboard-style input").check()  # the style-control switch
    table.get_by_text("style-controlled").wait_for(timeout=30_000)
    page.locator("#leaderboard-category input").click()  # a category board
    page.get_by_role("option", name=re.compile(r"^english \(\d+\)$")).click()
    table.get_by_text(" in english on 2 models").wait_for(timeout=30_000)
    served = httpx.get(arena.url + "/api/leaderboard", params={"category": "english"}).json()
    assert served["category"] == "english" and served["categories"]["english"] >= count + 1
    assert {row["model"] for row in served["board"]["rows"]} == {"palestra-tiny", "scripted"}
    (judged,) = arena.events("bothbad_vote")  # the category judge labelled the battle
    assert judged["flags"]["category_judge"] == "scripted"
    assert "coding" in judged["flags"]["categories"] and served["categories"]["coding"] >= 1
