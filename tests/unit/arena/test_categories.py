"""Category leaderboards: the rules label prompts; the store keeps the labels with each
vote; `arena rate --where categories=X`, the web UI's LiveBoard and its JSON at
/api/leaderboard give the same category board; style control is a switch."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from palestra.arena.battles import Battle
from palestra.arena.categories import label, language_of
from palestra.arena.pipeline import rate_battles
from palestra.arena.settings import CleaningOptions, RatingOptions
from palestra.arena.store import ArenaEvent, ArenaStore
from palestra.webui.leaderboard_page import mount_leaderboard_json
from palestra.webui.models import ModelDirectory
from palestra.webui.service import ArenaService
from tests.unit.arena.test_store import state


def battle(*prompts: str) -> Battle:
    conversation = []
    for prompt in prompts:
        conversation += [
            {"role": "user", "content": prompt},
            {"role": "assistant", "content": "ok"},
        ]
    return Battle("a", "b", "tie", turn=len(prompts), conversation_a=conversation)


@pytest.mark.parametrize(
    ("prompts", "expected"),
    [
        (("Write a Python function that reverses a list.",), ["coding", "english"]),
        (("Solve 3x + 5 = 20 for x.",), ["math", "english"]),
        (("Write a poem about the sea.",), ["creative_writing", "english"]),
        (("Describe Paris in exactly three sentences.",), ["instruction_following", "english"]),
        (("What is the capital of France?",), ["english"]),
        (("Hi", "And what about Spain?"), ["multi_turn", "english"]),
        ((" ".join(["word"] * 400),), ["long_query", "english"]),
        (
            ("Explain how to compute the determinant of a 3x3 matrix and write Python code "
             "for it in no more than 200 words. Why does it matter? What does a zero "
             "determinant mean for a system of linear equations in practice, for example "
             "in physics or in graphics?",),
            ["coding", "math", "instruction_following", "hard_prompts", "english"],
        ),
        (("Quelle est la capitale de la France et pourquoi est-elle célèbre?",), ["french"]),
        (("Wie geht es dir und was ist der Sinn des Lebens?",), ["german"]),
        (("你好，请介绍一下你自己。",), ["chinese"]),
        (("Привет, как дела?",), ["russian"]),
    ],
)  # fmt: skip
def test_rules_label_prompts(prompts: tuple[str, ...], expected: list[str]) -> None:
    assert label(battle(*prompts)) == expected


def test_language_of_scripts() -> None:
    assert language_of("こんにちは、元気ですか") == "japanese"
    assert language_of("안녕하세요 반갑습니다") == "korean"
    assert language_of("12345 !!!") == "other_language"


def _store(path: str | Path) -> ArenaStore:
    """alpha wins coding prompts, beta wins the others, gamma is in between."""
    store = ArenaStore(path)
    rng = random.Random(3)
    events = []
    for n in range(120):
        a, b = rng.sample(["alpha", "beta", "gamma"], 2)
        coding = n % 2 == 0
        question = f"Write a Python function number {n}." if coding else f"Tell me about city {n}."
        favourite = "alpha" if coding else "beta"
        won = favourite in (a, b) and rng.random() < 0.9
        winner = favourite if won else rng.choice([a, b])
        kind = "leftvote" if winner == a else "rightvote"
        answer_a = "## Answer\n- **yes**" if a == "gamma" else "Yes."
        events.append(
            ArenaEvent(kind, f"user_{n % 30}", [a, b],
                       [state(a, question, answer_a), state(b, question, "Yes.")], shown=["", ""])
        )  # fmt: skip
    store.record_many(events)
    return store


def test_category_boards_agree_everywhere(store_location: str) -> None:
    store = _store(store_location)
    facts, _ = store.battle_facts()
    assert sum("coding" in b.extra["categories"] for b in facts) == 60
    assert {b.language for b in facts} == {"english"}
    rating, cleaning = RatingOptions(rounds=10), CleaningOptions(anomaly_alpha=None)
    coding = rate_battles(store.battles(), rating, cleaning, {"categories": "coding"})
    assert coding.board is not None and coding.kept == 60
    assert coding.board.rows[0].model == "alpha"  # alpha leads on code
    overall = rate_battles(store.battles(), rating, cleaning)
    assert overall.board is not None and overall.kept == 120
    overall_alpha, coding_alpha = (
        next(r.rating for r in board.rows if r.model == "alpha")
        for board in (overall.board, coding.board)
    )
    assert coding_alpha > overall_alpha + 50  # strong on code only

    service = ArenaService(ModelDirectory.of([]), store, rating=rating, cleaning=cleaning)
    live = service.leaderboard("coding")
    assert live.board is not None and live.board.rows == coding.board.rows
    styled = service.leaderboard(None, style=True)
    assert styled.board is not None and styled.board.rows[0].style_rating is not None
    assert service.board.category_counts["coding"] == 60

    app = FastAPI()
    mount_leaderboard_json(app, service)
    client = TestClient(app)
    body = client.get("/api/leaderboard", params={"category": "coding"}).json()
    assert body["category"] == "coding" and body["updated"] > 0
    assert [r["model"] for r in body["board"]["rows"]] == [r.model for r in coding.board.rows]
    assert body["categories"]["coding"] == 60 and "60 of 120 battles rated" in body["summary"]
    styled_json = client.get("/api/leaderboard", params={"style_control": "true"}).json()
    assert styled_json["board"]["style_coefficients"]["length"]["value"] != 0
    wrong = client.get("/api/leaderboard", params={"category": "poetry"})
    assert wrong.status_code == 400
    assert "unknown category 'poetry'" in wrong.json()["error"]["message"]
