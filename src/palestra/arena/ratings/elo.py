"""Online Elo, for reference: battles in time order, each moving both ratings by K times
the surprise. Order-dependent by nature (Bradley-Terry is the leaderboard's method)."""

from __future__ import annotations

import numpy as np

from palestra.arena.battles import Battle


def online_elo(
    battles: list[Battle],
    models: list[str],
    *,
    k: float = 4.0,
    scale: float = 400.0,
    base: float = 10.0,
    initial: float = 1000.0,
) -> np.ndarray:
    index = {name: i for i, name in enumerate(models)}
    ratings = [initial] * len(models)  # plain floats: a million steps in about a second
    score = {"model_a": 1.0, "model_b": 0.0, "tie": 0.5, "tie (bothbad)": 0.5}
    for battle in sorted(battles, key=lambda b: b.tstamp):
        a, b = index[battle.model_a], index[battle.model_b]
        expected = 1.0 / (1.0 + base ** ((ratings[b] - ratings[a]) / scale))
        delta = k * (score[battle.winner] - expected)
        ratings[a] += delta
        ratings[b] -= delta
    return np.array(ratings)
