"""Agreement between two sets of pairwise votes (`palestra judge agreement`), as in the
MT-bench paper: two judges, or a judge and human votes, compared on the same question,
model pair and turn; "with ties" counts every pair of votes, "without ties" leaves out pairs
where either vote is a tie. A vote set is a pairwise judgment file (MT-bench's
g1/g2 format, an inconsistent verdict counting as a tie) or battle-style records
(question_id, model_a, model_b, winner, judge, turn), such as MT-bench's human judgments.
When both sets are the same votes (human against human), each unordered pair of distinct
votes is compared once.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from palestra.arena.battles import Battle, load_battles
from palestra.core.errors import InvalidRequestError
from palestra.core.jsonl import read_jsonl
from palestra.judge.results import load_judgments, pair_battles

VoteKey = tuple[str, str, str, int]  # question, model (sorted first), model, turn


def load_votes(path: str | Path, judge_prefix: str | None = None) -> list[Battle]:
    """Votes from a judgment file or a battle file, optionally only judges whose name
    starts with `judge_prefix`."""
    file = Path(path)
    if not file.is_file():
        raise InvalidRequestError(f"vote file {str(file)!r} does not exist")
    first = next((record for _, record in read_jsonl(file)), None) if _is_jsonl(file) else None
    if first is not None and "g1_winner" in first:
        votes = pair_battles(load_judgments(file))
    else:
        votes = load_battles(file)
    if judge_prefix:
        votes = [v for v in votes if v.judge.startswith(judge_prefix)]
    if not votes:
        raise InvalidRequestError(
            f"no votes in {str(file)!r}" + (f" from judges {judge_prefix}*" if judge_prefix else "")
        )
    return votes


def _is_jsonl(file: Path) -> bool:
    with file.open(encoding="utf-8") as handle:
        return not handle.read(64).lstrip().startswith("[")


def _outcome(vote: Battle) -> tuple[VoteKey, str]:
    """The vote keyed with the pair in sorted order, winner as "first", "second" or "tie"."""
    winner = "tie" if vote.winner.startswith("tie") else vote.winner
    if vote.model_a <= vote.model_b:
        key = (vote.question_id, vote.model_a, vote.model_b, vote.turn)
        side = {"model_a": "first", "model_b": "second", "tie": "tie"}[winner]
    else:
        key = (vote.question_id, vote.model_b, vote.model_a, vote.turn)
        side = {"model_a": "second", "model_b": "first", "tie": "tie"}[winner]
    return key, side


@dataclass(frozen=True)
class Agreement:
    turn: int | None  # None: all turns
    with_ties: tuple[int, int]  # (agreeing pairs, compared pairs)
    without_ties: tuple[int, int]

    @staticmethod
    def rate(counts: tuple[int, int]) -> float:
        return counts[0] / counts[1] if counts[1] else float("nan")


def agreement(first: list[Battle], second: list[Battle], same: bool = False) -> list[Agreement]:
    """Per turn, then over all turns."""
    left: dict[VoteKey, list[str]] = defaultdict(list)
    right: dict[VoteKey, list[str]] = defaultdict(list)
    for vote in first:
        key, side = _outcome(vote)
        left[key].append(side)
    for vote in second:
        key, side = _outcome(vote)
        right[key].append(side)
    pairs: dict[int, list[tuple[str, str]]] = defaultdict(list)
    for key, sides in left.items():
        if same:
            pairs[key[3]].extend(
                (sides[i], sides[j]) for i in range(len(sides)) for j in range(i + 1, len(sides))
            )
        elif key in right:
            pairs[key[3]].extend((a, b) for a in sides for b in right[key])
    if not pairs:
        raise InvalidRequestError(
            "the two vote sets share no (question, model pair, turn); nothing to compare"
        )

    def count(items: list[tuple[str, str]]) -> Agreement:
        untied = [(a, b) for a, b in items if "tie" not in (a, b)]
        return Agreement(
            None,
            (sum(a == b for a, b in items), len(items)),
            (sum(a == b for a, b in untied), len(untied)),
        )

    results = []
    for turn in sorted(pairs):
        row = count(pairs[turn])
        results.append(Agreement(turn, row.with_ties, row.without_ties))
    results.append(count([p for items in pairs.values() for p in items]))
    return results


def agreement_markdown(rows: list[Agreement], names: tuple[str, str]) -> str:
    lines = [
        f"Agreement between {names[0]} and {names[1]}",
        "",
        "| turn | with ties | pairs | without ties | pairs |",
        "|---|---:|---:|---:|---:|",
    ]
    for row in rows:
        lines.append(
            f"| {'all' if row.turn is None else row.turn} | "
            f"{Agreement.rate(row.with_ties):.1%} | {row.with_ties[1]} | "
            f"{Agreement.rate(row.without_ties):.1%} | {row.without_ties[1]} |"
        )
    return "\n".join(lines) + "\n"
