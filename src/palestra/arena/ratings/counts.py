"""`PairCounts`: battles aggregated to unique (model a, model b) rows with win/loss/tie
counts, so a million battles over a hundred models become a few thousand rows.
Ties and "both bad" ties count as half a win each way."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from palestra.arena.battles import Battle

OUTCOME = {"model_a": 0, "model_b": 1, "tie": 2, "tie (bothbad)": 2}


def battle_arrays(
    battles: list[Battle],
) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray]:
    """(sorted model names, index of model a, index of model b, outcome) per battle;
    outcome 0: a wins, 1: b wins, 2: tie."""
    models = sorted({b.model_a for b in battles} | {b.model_b for b in battles})
    index = {name: i for i, name in enumerate(models)}
    count = len(battles)
    a = np.fromiter((index[b.model_a] for b in battles), dtype=np.int64, count=count)
    b_ = np.fromiter((index[b.model_b] for b in battles), dtype=np.int64, count=count)
    outcome = np.fromiter((OUTCOME[b.winner] for b in battles), dtype=np.int64, count=count)
    return models, a, b_, outcome


@dataclass(frozen=True)
class PairCounts:
    models: list[str]
    a: np.ndarray  # index of the first model of each row
    b: np.ndarray
    wins_a: np.ndarray
    wins_b: np.ndarray
    ties: np.ndarray

    @property
    def total(self) -> np.ndarray:
        return self.wins_a + self.wins_b + self.ties

    @property
    def score_a(self) -> np.ndarray:
        """Model a's score per row: wins plus half the ties."""
        return self.wins_a + 0.5 * self.ties

    def battles_per_model(self) -> np.ndarray:
        size = len(self.models)
        return np.bincount(self.a, self.total, size) + np.bincount(self.b, self.total, size)

    def with_counts(self, wins_a: np.ndarray, wins_b: np.ndarray, ties: np.ndarray) -> PairCounts:
        return PairCounts(self.models, self.a, self.b, wins_a, wins_b, ties)

    def matrices(self) -> tuple[np.ndarray, np.ndarray]:
        """(win rate of row over column with ties as half, battle counts), both M x M."""
        size = len(self.models)
        battles = np.zeros((size, size))
        score = np.zeros((size, size))
        np.add.at(battles, (self.a, self.b), self.total)
        np.add.at(battles, (self.b, self.a), self.total)
        np.add.at(score, (self.a, self.b), self.score_a)
        np.add.at(score, (self.b, self.a), self.total - self.score_a)
        with np.errstate(invalid="ignore", divide="ignore"):
            rate = np.where(battles > 0, score / battles, np.nan)
        return rate, battles

    @classmethod
    def from_arrays(
        cls,
        models: list[str],
        a: np.ndarray,
        b: np.ndarray,
        outcome: np.ndarray,
        weights: np.ndarray | None = None,
    ) -> PairCounts:
        """Aggregate per-battle arrays (outcome 0: a wins, 1: b wins, 2: tie)."""
        size = len(models)
        a, b, outcome = np.asarray(a), np.asarray(b), np.asarray(outcome)
        swap = a > b  # one row per unordered pair
        first, second = np.where(swap, b, a), np.where(swap, a, b)
        flipped = np.where(swap & (outcome < 2), 1 - outcome, outcome)
        key = (first.astype(np.int64) * size + second) * 3 + flipped
        cells = np.bincount(key, weights=weights, minlength=size * size * 3).reshape(-1, 3)
        rows = np.nonzero(cells.sum(axis=1))[0]
        return cls(
            models,
            rows // size,
            rows % size,
            cells[rows, 0].astype(float),
            cells[rows, 1].astype(float),
            cells[rows, 2].astype(float),
        )

    @classmethod
    def from_battles(cls, battles: list[Battle]) -> PairCounts:
        return cls.from_arrays(*battle_arrays(battles))

    @classmethod
    def from_arena_pair_counts(cls, path: str | Path) -> PairCounts:
        """The Chatbot Arena release of pair counts: models, X = [i, j] pairs, Y = [i wins,
        j wins, tie, tie (bothbad)]."""
        data = json.loads(Path(path).read_text())
        pairs = np.asarray(data["X"], dtype=np.int64)
        outcomes = np.asarray(data["Y"], dtype=float)
        a, b = pairs[:, 0], pairs[:, 1]
        swap = a > b
        wins_a = np.where(swap, outcomes[:, 1], outcomes[:, 0])
        wins_b = np.where(swap, outcomes[:, 0], outcomes[:, 1])
        return cls(
            list(data["models"]),
            np.minimum(a, b),
            np.maximum(a, b),
            wins_a,
            wins_b,
            outcomes[:, 2] + outcomes[:, 3],
        )
