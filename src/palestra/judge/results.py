"""Reading judgment files into results (`palestra judge show`).

Single grading: mean score per model, overall, per turn and per category (scores of -1,
unparsable judgments, are left out and counted). Pairwise: wins, losses and ties per model,
where a verdict that flips with the order is a tie, with win rate, loss rate and the
adjusted win rate (a tie is half a win), as MT-bench reports them; and a Bradley-Terry table
with confidence intervals computed by the arena's ratings code from the same verdicts.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from palestra.arena.battles import Battle
from palestra.core.errors import InvalidRequestError
from palestra.core.jsonl import read_jsonl
from palestra.judge.grading import record_key


def load_judgments(path: Path) -> list[dict[str, Any]]:
    """A judgment file's records, the last record of each match winning (re-judged errors
    replace the failed ones)."""
    if not path.is_file():
        raise InvalidRequestError(
            f"judgment file {str(path)!r} does not exist; run `palestra judge grade` first"
        )
    latest: dict[tuple[str, ...], dict[str, Any]] = {}
    for number, record in read_jsonl(path):
        try:
            latest[record_key(record)] = record
        except KeyError as exc:
            raise InvalidRequestError(f"{path}:{number}: judgment without {exc}") from exc
    return list(latest.values())


@dataclass
class ModelScores:
    model: str
    overall: float
    turns: dict[int, float]
    categories: dict[str, float]
    judged: int
    unparsable: int


def _mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else math.nan


def single_scores(
    records: list[dict[str, Any]], categories: dict[str, str] | None = None
) -> list[ModelScores]:
    """Per-model means, best first. `categories` maps question ids (as text) to categories."""
    by_model: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for record in records:
        by_model[record["model"]].append(record)
    table = []
    for model, rows in by_model.items():
        valid = [r for r in rows if r["score"] != -1]
        turns: dict[int, list[float]] = defaultdict(list)
        cats: dict[str, list[float]] = defaultdict(list)
        for r in valid:
            turns[int(r["turn"])].append(float(r["score"]))
            if categories:
                cats[categories.get(str(r["question_id"]), "")].append(float(r["score"]))
        table.append(
            ModelScores(
                model,
                _mean([float(r["score"]) for r in valid]),
                {t: _mean(v) for t, v in sorted(turns.items())},
                {c: _mean(v) for c, v in sorted(cats.items())},
                len(valid),
                len(rows) - len(valid),
            )
        )
    return sorted(table, key=lambda s: -s.overall if not math.isnan(s.overall) else math.inf)


def pair_winner(record: dict[str, Any]) -> str | None:
    """The match's winner (a model name or "tie"); None when either order failed."""
    g1, g2 = record["g1_winner"], record["g2_winner"]
    if "error" in (g1, g2):
        return None
    return g1 if g1 == g2 else "tie"


@dataclass
class PairRow:
    model: str
    wins: int = 0
    losses: int = 0
    ties: int = 0
    inconsistent: int = 0
    errors: int = 0
    opponents: set[str] = field(default_factory=set)

    @property
    def games(self) -> int:
        return self.wins + self.losses + self.ties

    @property
    def win_rate(self) -> float:
        return self.wins / self.games if self.games else math.nan

    @property
    def loss_rate(self) -> float:
        return self.losses / self.games if self.games else math.nan

    @property
    def adjusted_win_rate(self) -> float:
        return (self.wins + 0.5 * self.ties) / self.games if self.games else math.nan


def pairwise_table(records: list[dict[str, Any]], baseline: str | None = None) -> list[PairRow]:
    """Win/loss/tie per model, best adjusted win rate first (the baseline left out)."""
    rows: dict[str, PairRow] = {}
    for record in records:
        pair = (record["model_1"], record["model_2"])
        for model in pair:
            rows.setdefault(model, PairRow(model))
        winner = pair_winner(record)
        for model, other in (pair, pair[::-1]):
            row = rows[model]
            row.opponents.add(other)
            if winner is None:
                row.errors += 1
            elif winner == "tie":
                row.ties += 1
                if record["g1_winner"] != record["g2_winner"]:
                    row.inconsistent += 1
            elif winner == model:
                row.wins += 1
            else:
                row.losses += 1
    table = [r for r in rows.values() if r.model != baseline]
    return sorted(table, key=lambda r: -r.adjusted_win_rate if r.games else math.inf)


def pair_battles(records: list[dict[str, Any]]) -> list[Battle]:
    """Pairwise verdicts as battles for the arena's ratings (failed matches left out)."""
    battles = []
    for record in records:
        winner = pair_winner(record)
        if winner is None:
            continue
        outcome = (
            "tie" if winner == "tie" else ("model_a" if winner == record["model_1"] else "model_b")
        )
        judge = record.get("judge")
        battles.append(
            Battle(
                model_a=record["model_1"],
                model_b=record["model_2"],
                winner=outcome,  # type: ignore[arg-type]
                judge=judge[0] if isinstance(judge, list) else str(judge or ""),
                turn=int(record.get("turn", 1)),
                anony=False,
                question_id=str(record["question_id"]),
            )
        )
    return battles


def _number(value: float, digits: int = 2) -> str:
    return "-" if math.isnan(value) else f"{value:.{digits}f}"


def single_markdown(scores: list[ModelScores]) -> str:
    turns = sorted({t for s in scores for t in s.turns})
    cats = sorted({c for s in scores for c in s.categories if c})
    head = ["model", "score", *(f"turn {t}" for t in turns), *cats, "judged", "unparsable"]
    lines = ["| " + " | ".join(head) + " |", "|---" + "|---:" * (len(head) - 1) + "|"]
    for s in scores:
        cells = [
            s.model,
            _number(s.overall),
            *(_number(s.turns.get(t, math.nan)) for t in turns),
            *(_number(s.categories.get(c, math.nan)) for c in cats),
            str(s.judged),
            str(s.unparsable),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def pairwise_markdown(rows: list[PairRow]) -> str:
    head = "| model | win | loss | tie | inconsistent | error | win rate | loss rate | adjusted |"
    lines = [head, "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(
            f"| {r.model} | {r.wins} | {r.losses} | {r.ties} | {r.inconsistent} | {r.errors} | "
            f"{_number(r.win_rate, 3)} | {_number(r.loss_rate, 3)} | "
            f"{_number(r.adjusted_win_rate, 3)} |"
        )
    return "\n".join(lines) + "\n"
