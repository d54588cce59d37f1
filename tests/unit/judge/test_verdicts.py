"""Verdict parsing: the formats MT-bench judges write, and what must not parse."""

from __future__ import annotations

import pytest

from palestra.judge.verdicts import parse_pair, parse_rating


@pytest.mark.parametrize(
    ("text", "score"),
    [
        ("Good answer. Rating: [[8]]", 8.0),
        ("Rating: [[ 7.5 ]]", 7.5),
        ("The format is [[rating]], e.g. [[5]]. My verdict: [[9]]", 9.0),  # last one counts
        ("Rating: [6]", 6.0),  # single brackets when the double form is missing
        ("Rating: [[10]] and a citation [3]", 10.0),  # the strict form wins
        ("Rating: [[11]]", None),  # out of the 1-10 scale
        ("I would rate this an eight.", None),
        ("Rating: [[A]]", None),
        ("", None),
    ],
)
def test_parse_rating(text: str, score: float | None) -> None:
    assert parse_rating(text) == score


@pytest.mark.parametrize(
    ("text", "verdict"),
    [
        ("Assistant A is better. [[A]]", "A"),
        ("[[B]]", "B"),
        ("It is a tie: [[C]]", "tie"),
        ('Format: "[[A]]" if A is better... Final verdict: [[B]]', "B"),
        ("[A] seems better", None),
        ("Both are good.", None),
    ],
)
def test_parse_pair_letters(text: str, verdict: str | None) -> None:
    assert parse_pair(text) == verdict


def test_parse_pair_two_scores() -> None:
    fmt = "[[rating_a,rating_b]]"
    assert parse_pair("Scores: [[8, 6]]", fmt) == "A"
    assert parse_pair("Scores: [[5.5,9]]", fmt) == "B"
    assert parse_pair("Scores: [[7, 7.05]]", fmt) == "tie"  # within 0.1
    assert parse_pair("Scores: [[A]]", fmt) is None
