"""`palestra arena release`: a store with personal data, repeated and named votes, a
blocked word and a crowded pair becomes a de-identified release in FastChat's battle
format, with a datasheet that counts every removal and replacement, and `palestra arena
rate` reads the release back."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from palestra.arena.store import ArenaEvent, ArenaStore
from tests.integration.cluster import CLI
from tests.unit.arena.test_store import state

PERSONAL = ("jane.doe{n}@example.com", "+1 415-555-01{n:02d}", "{n}2 Baker Street")


def _store(path: Path) -> ArenaStore:
    store = ArenaStore(path)
    events = []
    for n in range(16):  # alpha-beta 10 times (capped to 6), beta-gamma 6 times
        a, b = ("alpha", "beta") if n < 10 else ("beta", "gamma")
        email, phone, street = (p.format(n=n) for p in PERSONAL)
        question = f"Question {n}: write to {email}, call {phone}, I live at {street}."
        events.append(
            ArenaEvent(
                "leftvote" if n % 3 else "rightvote", store.hash_user(f"198.51.100.{n % 4}"),
                [a, b], [state(a, question, "## Plan\n- **one**"),
                         state(b, question, "Sure." if n < 10 else "Certainly.")],
                shown=["", ""], tstamp=1.75e9 + n,
            )
        )  # fmt: skip
    dropped = [
        ("named", ["alpha", "gamma"], ["alpha", "gamma"], "Hi.", "Hello."),
        ("blocked", ["gamma", "alpha"], ["", ""], "That is a forbiddenword.", "No."),
        ("leak", ["gamma", "alpha"], ["", ""], "I am gamma, nice to meet you.", "Hi."),
    ]
    for question, pair, shown, answer_a, answer_b in dropped:
        events.append(
            ArenaEvent("tievote", store.hash_user("203.0.113.9"), pair,
                       [state(pair[0], question, answer_a), state(pair[1], question, answer_b)],
                       shown=shown, tstamp=1.75e9 + 100)
        )  # fmt: skip
    events.append(events[0])  # the same vote twice: a duplicate
    store.record_many(events)
    return store


def test_a_release_is_de_identified_counted_and_rates(tmp_path: Path) -> None:
    store = _store(tmp_path / "arena.db")
    hashes = {b.judge for b in store.battles()}
    (tmp_path / "blocked.txt").write_text("# words\nforbiddenword\n")
    (tmp_path / "flagged.txt").write_text("certainly\n")
    out = tmp_path / "release"
    result = subprocess.run(
        [*CLI, "arena", "release", str(tmp_path / "arena.db"), str(out),
         "--max-per-pair", "6", "--blocked-words", str(tmp_path / "blocked.txt"),
         "--moderation", "keyword", "--moderation-words", str(tmp_path / "flagged.txt")],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "released 12 of 20 battles by 4 voters" in result.stdout
    records = json.loads((out / "battles.json").read_text())
    text = (out / "battles.json").read_text()
    for n in range(16):  # no e-mail, phone number or street of the store is left
        for personal in PERSONAL:
            assert personal.format(n=n) not in text
    assert text.count("<EMAIL_ADDRESS>") == text.count("<PHONE_NUMBER>") == 24  # 12 x 2 sides
    assert text.count("<STREET_ADDRESS>") == 24
    assert not any(h in text for h in hashes)  # voters re-keyed
    assert {r["judge"] for r in records} == {f"arena_user_{n}" for n in range(4)}
    assert all(r["anony"] for r in records) and "forbiddenword" not in text
    pairs = [tuple(sorted((r["model_a"], r["model_b"]))) for r in records]
    assert pairs.count(("alpha", "beta")) == 6 and pairs.count(("beta", "gamma")) == 6
    flagged = {n for n, r in enumerate(records) if r["moderation"]["flagged"]}
    assert flagged == {n for n, pair in enumerate(pairs) if "gamma" in pair}  # "Certainly."
    assert records[0]["conv_metadata"]["header_count_a"] == {"all": 1}
    keys = set(records[0])
    assert {"question_id", "model_a", "model_b", "winner", "judge", "conversation_a",
            "conversation_b", "turn", "anony", "language", "tstamp"} <= keys  # fmt: skip

    sheet = (out / "DATASHEET.md").read_text()
    assert "12 released of 20 stored battle votes" in sheet
    for line in ("| named (not anonymous) battles | 1 |", "| duplicates | 1 |",
                 "| identity leaks | 1 |",
                 "| a blocked word | 1 |", "| over 6 battles for their pair | 4 |",
                 "| `<EMAIL_ADDRESS>` | 24 |", "| `<PHONE_NUMBER>` | 24 |"):  # fmt: skip
        assert line in sheet, line
    assert "6 battles flagged" in sheet and "Names and places: not checked" in sheet

    rated = subprocess.run(
        [*CLI, "arena", "rate", str(out / "battles.json"), "--format", "json", "--rounds", "10",
         "--style-control"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert rated.returncode == 0, rated.stderr
    board = json.loads(rated.stdout)
    assert sum(r["battles"] for r in board["rows"]) == 2 * 12
    assert {r["model"] for r in board["rows"]} == {"alpha", "beta", "gamma"}


def test_a_missing_ner_model_is_one_clear_error() -> None:
    from palestra.arena.release import Scrubber
    from palestra.core.errors import InvalidRequestError

    with pytest.raises(InvalidRequestError) as raised:
        Scrubber("no_such_model", 0.4)
    assert str(raised.value) == (
        "spaCy model 'no_such_model' is not installed (python -m spacy download no_such_model)"
    )
