"""Battles to preference records: the shared prompt, multi-turn answers, ties, filters,
and a count for every battle left out."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from palestra.arena.battles import Battle, save_battles
from palestra.arena.preferences import (
    PreferenceOptions,
    PreferenceReport,
    battle_preferences,
    export_preferences,
)
from palestra.arena.settings import CleaningOptions
from palestra.core.errors import InvalidRequestError


def chat(*turns: str) -> list[dict[str, str]]:
    roles = ("user", "assistant")
    return [{"role": roles[i % 2], "content": text} for i, text in enumerate(turns)]


def battle(
    winner: str, a: list[dict[str, str]], b: list[dict[str, str]], **fields: object
) -> Battle:
    return Battle(
        model_a=str(fields.pop("model_a", "m1")),
        model_b=str(fields.pop("model_b", "m2")),
        winner=winner,  # type: ignore[arg-type]
        conversation_a=a,
        conversation_b=b,
        tstamp=float(fields.pop("tstamp", 1_767_225_600)),  # 2026-01-01
        **fields,  # type: ignore[arg-type]
    )


def options(tmp_path: Path, **changes: object) -> PreferenceOptions:
    return PreferenceOptions(source="unused", out=tmp_path / "p.jsonl", **changes)


def test_pairs_share_the_prompt_and_multi_turn_answers_keep_their_turns(tmp_path: Path) -> None:
    single = battle("model_b", chat("Hi?", "Hello."), chat("Hi?", "Hey there."))
    # same first answer, different second: the first exchange is part of the prompt
    later = battle(
        "model_a",
        chat("Q1", "A1", "Q2", "good"),
        chat("Q1", "A1", "Q2", "bad"),
    )
    # different from the first answer on: each answer is the rest of its conversation
    diverged = battle(
        "model_a",
        chat("Q1", "x", "Q2", "y"),
        chat("Q1", "p", "Q2", "q"),
    )
    report = PreferenceReport()
    records = battle_preferences([single, later, diverged], options(tmp_path), report)
    assert records[0] == {
        "prompt": chat("Hi?"),
        "chosen": [{"role": "assistant", "content": "Hey there."}],
        "rejected": [{"role": "assistant", "content": "Hello."}],
        "chosen_model": "m2",
        "rejected_model": "m1",
    }
    assert records[1]["prompt"] == chat("Q1", "A1", "Q2")
    assert records[1]["chosen"] == [{"role": "assistant", "content": "good"}]
    assert records[2]["prompt"] == chat("Q1")
    assert records[2]["chosen"] == chat("Q1", "x", "Q2", "y")[1:]
    assert records[2]["rejected"] == chat("Q1", "p", "Q2", "q")[1:]
    assert (report.used, report.records, report.multi_turn) == (3, 3, 1)


def test_ties_are_dropped_from_pairs_and_labelled_or_dropped_when_unpaired(
    tmp_path: Path,
) -> None:
    battles = [
        battle("tie", chat("Q", "a"), chat("Q", "b")),
        battle("tie (bothbad)", chat("Q", "c"), chat("Q", "d")),
        battle("model_a", chat("Q", "e"), chat("Q", "f")),
    ]
    report = PreferenceReport()
    assert len(battle_preferences(battles, options(tmp_path), report)) == 1
    assert report.dropped == {"tie (no preferred answer)": 1, "both bad (no preferred answer)": 1}

    labelled = battle_preferences(battles, options(tmp_path, shape="unpaired"), PreferenceReport())
    assert [(r["completion"][0]["content"], r["label"]) for r in labelled] == [
        ("a", True), ("b", True), ("c", False), ("d", False), ("e", True), ("f", False),
    ]  # fmt: skip
    dropped = PreferenceReport()
    kept = battle_preferences(battles, options(tmp_path, shape="unpaired", ties="drop"), dropped)
    assert len(kept) == 2 and sum(dropped.dropped.values()) == 2


def test_battles_that_give_no_pair_are_counted_with_the_reason(tmp_path: Path) -> None:
    battles = [
        battle("model_a", [], []),
        battle("model_a", chat("Q", "same"), chat("Q", "same")),
        battle("model_a", chat("Q one", "x"), chat("Q two", "y")),
        battle("model_a", chat("Q", "x"), chat("Q")),
    ]
    report = PreferenceReport()
    assert battle_preferences(battles, options(tmp_path), report) == []
    assert set(report.dropped) == {
        "no conversation (a battle file without conversation_a/conversation_b)",
        "identical answers",
        "the sides were asked different things",
        "one side has no answer",
    }


def test_model_date_and_field_filters(tmp_path: Path) -> None:
    battles = [
        battle("model_a", chat("Q1", "1"), chat("Q1", "2"), model_a="keep", language="English"),
        battle("model_a", chat("Q2", "3"), chat("Q2", "4"), model_a="other", language="English"),
        battle("model_b", chat("Q3", "5"), chat("Q3", "6"), model_b="keep", language="English",
               tstamp=1_700_000_000),
        battle("model_b", chat("Q4", "7"), chat("Q4", "8"), model_b="keep", language="German"),
    ]  # fmt: skip
    source = tmp_path / "battles.json"
    save_battles(battles, source)
    chosen = PreferenceOptions(
        source=str(source),
        out=tmp_path / "out" / "prefs.jsonl",
        models=["keep"],
        since="2026-01-01",
        where=["language=English"],
    )
    report = export_preferences(chosen, CleaningOptions(anomaly_alpha=0))
    lines = (tmp_path / "out" / "prefs.jsonl").read_text().splitlines()
    assert [json.loads(line)["chosen"][0]["content"] for line in lines] == ["1"]
    assert report.dropped == {
        "not matching --where": 1,
        "not one of --model": 1,
        "outside --since/--until": 1,
    }
    assert "voter" not in lines[0] and "judge" not in lines[0]  # no voter ids leave

    with pytest.raises(InvalidRequestError, match="YYYY-MM-DD"):
        battle_preferences(battles, options(tmp_path, since="01/01/2026"), PreferenceReport())
