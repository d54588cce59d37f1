"""Judge agreement as in the MT-bench paper, on votes whose agreement is known by hand."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from palestra.arena.battles import Battle
from palestra.judge.agreement import Agreement, agreement, load_votes
from tests.integration.cluster import CLI


def vote(q: str, a: str, b: str, winner: str, judge: str = "", turn: int = 1) -> Battle:
    return Battle(a, b, winner, judge=judge, turn=turn, question_id=q)  # type: ignore[arg-type]


def test_agreement_with_and_without_ties() -> None:
    judge = [
        vote("1", "x", "y", "model_a"),
        vote("2", "x", "y", "model_b"),
        vote("3", "y", "x", "model_a"),  # the same pair listed the other way: y wins
        vote("4", "x", "y", "tie"),
        vote("5", "x", "y", "model_a", turn=2),
    ]
    humans = [
        vote("1", "y", "x", "model_b"),  # x wins: agrees
        vote("2", "x", "y", "model_a"),  # disagrees
        vote("3", "x", "y", "model_b"),  # y wins: agrees
        vote("4", "x", "y", "tie (bothbad)"),  # both ties: agree, left out without ties
        vote("5", "x", "y", "model_a", turn=2),
        vote("5", "x", "y", "tie", turn=2),  # two humans on one match: two comparisons
        vote("6", "x", "y", "model_a"),  # no judge vote: not compared
    ]
    turn_1, turn_2, overall = agreement(judge, humans)
    assert (turn_1.turn, turn_1.with_ties, turn_1.without_ties) == (1, (3, 4), (2, 3))
    assert (turn_2.turn, turn_2.with_ties, turn_2.without_ties) == (2, (1, 2), (1, 1))
    assert overall.turn is None and overall.with_ties == (4, 6) and overall.without_ties == (3, 4)
    assert Agreement.rate(overall.with_ties) == pytest.approx(4 / 6)


def test_same_votes_compare_each_pair_once() -> None:
    humans = [
        vote("1", "x", "y", "model_a", "h1"),
        vote("1", "x", "y", "model_a", "h2"),
        vote("1", "y", "x", "model_a", "h3"),
    ]
    (turn_1, _overall) = agreement(humans, humans, same=True)
    assert turn_1.with_ties == (1, 3)  # h1=h2 agree; h3 disagrees with both


def test_cli_reads_judgment_files_and_human_votes(tmp_path: Path) -> None:
    pairs = tmp_path / "judge_pair.jsonl"
    rows = [
        {"question_id": 1, "model_1": "x", "model_2": "y", "g1_winner": "x", "g2_winner": "x",
         "judge": ["j", "pair-v2"], "turn": 1},
        {"question_id": 2, "model_1": "x", "model_2": "y", "g1_winner": "x", "g2_winner": "y",
         "judge": ["j", "pair-v2"], "turn": 1},  # inconsistent: a tie
    ]  # fmt: skip
    pairs.write_text("".join(json.dumps(r) + "\n" for r in rows))
    humans = tmp_path / "human.json"
    human_votes = [
        {"question_id": 1, "model_a": "x", "model_b": "y", "winner": "model_a",
         "judge": "expert_1", "turn": 1},
        {"question_id": 2, "model_a": "x", "model_b": "y", "winner": "tie",
         "judge": "expert_2", "turn": 1},
        {"question_id": 2, "model_a": "x", "model_b": "y", "winner": "model_b",
         "judge": "author_1", "turn": 1},
    ]  # fmt: skip
    humans.write_text(json.dumps(human_votes))
    assert len(load_votes(humans, "expert")) == 2
    result = subprocess.run(
        [*CLI, "judge", "agreement", str(pairs), str(humans), "--judge-b", "expert"],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    assert "| all | 100.0% | 2 | 100.0% | 1 |" in result.stdout
    missing = subprocess.run(
        [*CLI, "judge", "agreement", str(tmp_path / "nope.jsonl")], capture_output=True, text=True
    )
    assert missing.returncode == 2
    assert missing.stderr.strip().startswith("palestra: error: vote file")
