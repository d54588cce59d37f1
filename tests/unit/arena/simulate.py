"""Battles simulated from known Bradley-Terry strengths, with ties whose expected score
matches the ties-as-half model (so the true ratings are what the estimator targets)."""

from __future__ import annotations

import numpy as np

from palestra.arena.battles import Battle
from palestra.arena.ratings.counts import PairCounts

PER_LOGIT = 400 / np.log(10)


def true_ratings(size: int, seed: int, spread: float = 300.0) -> np.ndarray:
    ratings = np.random.default_rng(seed).normal(0, spread / 2, size)
    return ratings - ratings.mean() + 1000


def simulate(
    ratings: np.ndarray, battles: int, seed: int, balanced: bool = False
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    size = len(ratings)
    if balanced:
        pairs = np.array([(i, j) for i in range(size) for j in range(size) if i != j])
        chosen = pairs[np.arange(battles) % len(pairs)]
        a, b = chosen[:, 0], chosen[:, 1]
    else:
        a = rng.integers(0, size, battles)
        b = (a + rng.integers(1, size, battles)) % size
    p = 1 / (1 + 10 ** ((ratings[b] - ratings[a]) / 400))
    tie = 0.8 * p * (1 - p)  # at most 0.2; E[score] = p
    u = rng.random(battles)
    outcome = np.where(u < p - tie / 2, 0, np.where(u < p + tie / 2, 2, 1))
    return a, b, outcome


def simulated_counts(ratings: np.ndarray, battles: int, seed: int) -> PairCounts:
    a, b, outcome = simulate(ratings, battles, seed)
    return PairCounts.from_arrays([f"m{i:03d}" for i in range(len(ratings))], a, b, outcome)


def simulated_battles(
    ratings: np.ndarray, battles: int, seed: int, balanced: bool = False
) -> list[Battle]:
    a, b, outcome = simulate(ratings, battles, seed, balanced)
    winners = ("model_a", "model_b", "tie")
    return [
        Battle(
            f"m{x:03d}",
            f"m{y:03d}",
            winners[o],
            judge=f"user{k % 50}",  # type: ignore[arg-type]
            tstamp=float(k),
            question_id=str(k),
        )
        for k, (x, y, o) in enumerate(zip(a.tolist(), b.tolist(), outcome.tolist(), strict=True))
    ]
