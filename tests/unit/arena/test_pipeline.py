"""One arena pipeline: the same store (SQLite or PostgreSQL) gives the same board in
`palestra arena rate` and in the web UI's Leaderboard tab, with the same battles cleaned
away and the filters said; the facts stored with each vote rate as the conversations do;
the web UI reads only new votes."""

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


def _store(path: str | Path) -> ArenaStore:
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


def test_the_cli_and_the_web_ui_give_the_same_board(store_location: str) -> None:
    path = store_location
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


def test_the_stored_facts_rate_as_the_conversations_do(store_location: str) -> None:
    """The leaderboard reads each vote's facts (verdicts and style counts judged when the
    vote was stored), never the conversations: the same board, filters and style fit."""
    from palestra.arena.pipeline import rate_battles
    from palestra.arena.settings import CleaningOptions, RatingOptions

    store = _store(store_location)
    again = store.battles()[5]  # a repeated vote: dropped as a duplicate
    store.record(
        ArenaEvent(
            "leftvote", again.judge, [again.model_a, again.model_b],
            [state(again.model_a, again.conversation_a[0]["content"], "# Title\n- **a**"),
             state(again.model_b, again.conversation_a[0]["content"], "Plain.")],
        )
    )  # fmt: skip
    rating = RatingOptions(style_control=True, rounds=20)
    cleaning = CleaningOptions(daily_vote_cap=11)
    facts, _ = store.battle_facts()
    assert not any(b.conversation_a for b in facts)
    from_texts = rate_battles(store.battles(), rating, cleaning)
    from_facts = rate_battles(facts, rating, cleaning)
    assert from_facts.summary() == from_texts.summary()
    assert "duplicates: 1" in from_facts.summary()
    assert "votes past 11 per user per day" in from_facts.summary()
    assert from_texts.board is not None and from_facts.board is not None
    assert from_facts.board.rows == from_texts.board.rows
    assert from_facts.board.style_coefficients == from_texts.board.style_coefficients


def test_the_web_ui_board_reads_only_new_votes(store_location: str) -> None:
    store = _store(store_location)
    service = ArenaService(ModelDirectory.of([]), store)
    reads: list[int] = []
    read_facts = store.battle_facts

    def counted(after: int = 0) -> tuple[list, int]:  # type: ignore[type-arg]
        battles, last = read_facts(after)
        reads.append(len(battles))
        return battles, last

    store.battle_facts = counted  # type: ignore[method-assign]
    first = service.leaderboard()
    assert reads == [93] and first.kept == 90
    assert service.leaderboard() is first and reads == [93]  # within the refresh spacing
    store.record(
        ArenaEvent("rightvote", "user_new", ["alpha", "gamma"],
                   [state("alpha", "new q", "A."), state("gamma", "new q", "G.")])
    )  # fmt: skip
    assert service.leaderboard() is first and reads == [93]  # not yet: spaced
    service.board.boards[(None, False)].due = 0.0  # spacing passed: a background refresh
    assert service.leaderboard() is first  # the page does not wait for it
    service.board._background[(None, False)].join(30)
    second = service.leaderboard()
    assert reads == [93, 1] and second.kept == 91 and second.total == 94
    assert service.board.boards[(None, False)].updated > 0
    assert service.board.last_event == 94
    # A board whose refresh comes after another read the new votes is still brought up
    # to date: the coding board counted 93 votes, then sees the 94th.
    coding = service.board.refresh("english")
    store.record(
        ArenaEvent("leftvote", "user_newer", ["alpha", "beta"],
                   [state("alpha", "newer q", "A."), state("beta", "newer q", "B.")])
    )  # fmt: skip
    service.board.refresh()  # the overall board reads vote 95
    assert service.board.refresh("english").total == coding.total + 1 == 95
