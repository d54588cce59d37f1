"""One arena pipeline: the same store gives the same board in `palestra arena rate` and in
the web UI's Leaderboard tab, with the same battles cleaned away and the filters said."""

from __future__ import annotations

import json
import random
import subprocess
from pathlib import Path

from palestra.arena.store import ArenaEvent, ArenaStore
from palestra.webui.models import ModelDirectory
from palestra.webui.service import ArenaService
from tests.integration.cluster import CLI
from tests.unit.arena.test_store import state

STRENGTH = {"alpha": 2.0, "beta": 1.0, "gamma": 0.5}


def _store(path: Path) -> ArenaStore:
    """Anonymous votes from eight voters, plus what cleaning must drop: a named battle, a
    vote whose answer named a model (flagged by the UI), and an errored answer."""
    store = ArenaStore(path)
    rng = random.Random(0)
    models = sorted(STRENGTH)
    events = []
    for number in range(90):
        a, b = rng.sample(models, 2)
        p_a = STRENGTH[a] / (STRENGTH[a] + STRENGTH[b])
        kind = "leftvote" if rng.random() < p_a else "rightvote"
        question = f"question {number}"
        events.append(
            ArenaEvent(
                type=kind,
                user=store.hash_user(f"198.51.100.{number % 8}"),
                models=[a, b],
                states=[state(a, question, "Fine answer."), state(b, question, "Other answer.")],
                shown=["", ""],
            )
        )
    dropped = [
        ("tievote", ["alpha", "beta"], ["alpha", "beta"], "A.", "B.", {}),  # named
        (
            "leftvote",
            ["gamma", "alpha"],
            ["", ""],
            "I am gamma.",
            "B.",
            {"identity_leak": ["gamma"]},
        ),
        ("rightvote", ["beta", "gamma"], ["", ""], "**Error:** timeout", "C.", {}),
    ]
    for kind, pair, shown, answer_a, answer_b, flags in dropped:
        events.append(
            ArenaEvent(
                type=kind,
                user=store.hash_user("203.0.113.9"),
                models=pair,
                states=[state(pair[0], "q", answer_a), state(pair[1], "q", answer_b)],
                shown=shown,
                flags=flags,
            )
        )
    store.record_many(events)
    return store


def test_the_cli_and_the_web_ui_give_the_same_board(tmp_path: Path) -> None:
    path = tmp_path / "arena.db"
    store = _store(path)
    ui = ArenaService(ModelDirectory.of([]), store).leaderboard()
    assert ui.board is not None and (ui.total, ui.kept) == (93, 90)
    assert "anonymous battles only" in ui.filters and "identity leaks: 1" in ui.summary()
    result = subprocess.run(
        [*CLI, "arena", "rate", str(path), "--format", "json"],
        capture_output=True, text=True, timeout=120, check=True,
    )  # fmt: skip
    cli = json.loads(result.stdout)
    assert "90 of 93 battles rated" in result.stderr  # the same summary
    assert [(r["model"], round(r["rating"], 6), round(r["lower"], 6)) for r in cli["rows"]] == [
        (r.model, round(r.rating, 6), round(r.lower, 6)) for r in ui.board.rows
    ]
    assert [r.model for r in ui.board.rows] == ["alpha", "beta", "gamma"]
