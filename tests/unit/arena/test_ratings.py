"""Bradley-Terry, intervals, anchoring, Elo and style control against battles simulated
from known strengths, and against the public Chatbot Arena release."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy.stats import norm, spearmanr

from palestra.arena.leaderboard import RatingOptions, compute_leaderboard, rate_counts
from palestra.arena.ratings import bradley_terry as bt
from palestra.arena.ratings.counts import PairCounts
from palestra.arena.ratings.elo import online_elo
from palestra.arena.ratings.style import StyleData, fit_style
from tests.unit.arena.simulate import (
    simulate,
    simulated_battles,
    simulated_counts,
    true_ratings,
)

ARENA = (
    Path(__file__).resolve().parents[4]
    / "shared"
    / "data"
    / "arena"
    / "chatbot_arena_20240814_pair_counts.json"
)


def test_recovers_the_ranking_with_ties() -> None:
    truth = true_ratings(12, seed=1)
    counts = simulated_counts(truth, 60_000, seed=2)
    assert counts.ties.sum() > 0
    ratings = bt.to_ratings(bt.fit_logits(counts), counts.models, bt.Scale())
    gap = truth[:, None] - truth[None, :]
    clear = gap > 30  # every pair more than 30 points apart is ordered right
    assert np.all((ratings[:, None] - ratings[None, :])[clear] > 0)
    assert np.abs(ratings - truth).max() < 25


@pytest.mark.parametrize("interval", ["sandwich", "bootstrap"])
def test_true_ratings_lie_in_95_percent_intervals_at_the_nominal_rate(interval: str) -> None:
    inside = total = 0
    for seed in range(8):
        truth = true_ratings(10, seed=100 + seed)
        counts = simulated_counts(truth, 8_000, seed=200 + seed)
        options = RatingOptions(interval=interval, rounds=60, seed=seed)  # type: ignore[arg-type]
        _, lower, upper, _ = rate_counts(counts, options)
        inside += int(((lower <= truth) & (truth <= upper)).sum())
        total += len(truth)
    coverage = inside / total
    # 80 intervals at 95%: a binomial 99.9% band is about [0.86, 1.0]
    assert 0.86 <= coverage <= 1.0, coverage


def test_sandwich_and_bootstrap_widths_agree_within_20_percent() -> None:
    truth = true_ratings(20, seed=7)
    counts = simulated_counts(truth, 200_000, seed=8)
    _, s_low, s_up, _ = rate_counts(counts, RatingOptions(interval="sandwich"))
    _, b_low, b_up, _ = rate_counts(counts, RatingOptions(interval="bootstrap", rounds=200))
    ratio = (s_up - s_low) / (b_up - b_low)
    assert np.all(np.abs(ratio - 1) < 0.2), ratio


def test_anchoring_shifts_every_rating_by_the_same_amount() -> None:
    counts = simulated_counts(true_ratings(8, seed=3), 20_000, seed=4)
    logits = bt.fit_logits(counts)
    mean_anchored = bt.to_ratings(logits, counts.models, bt.Scale(anchor_value=1000))
    model_anchored = bt.to_ratings(
        logits, counts.models, bt.Scale(anchor_model="m003", anchor_value=1114)
    )
    shift = model_anchored - mean_anchored
    assert np.allclose(shift, shift[0]) and model_anchored[3] == pytest.approx(1114)
    assert mean_anchored.mean() == pytest.approx(1000)


def test_elo_and_bradley_terry_agree_on_a_balanced_schedule() -> None:
    truth = true_ratings(8, seed=5, spread=500)
    battles = simulated_battles(truth, 40_000, seed=6, balanced=True)
    board = compute_leaderboard(battles, RatingOptions(interval="sandwich"))
    bt_order = [row.model for row in board.rows]
    elo = online_elo(battles, bt_order, k=4)
    assert spearmanr(elo, [row.rating for row in board.rows]).statistic > 0.95


def test_rank_with_ties() -> None:
    ranks = bt.rank_with_ties(np.array([10.0, 8.0, 2.0]), np.array([12.0, 11.0, 4.0]))
    assert list(ranks) == [1, 1, 3]


def test_style_control_recovers_a_planted_length_effect() -> None:
    rng = np.random.default_rng(9)
    truth = true_ratings(6, seed=10)
    a, b, _ = simulate(truth, 30_000, seed=11)
    length_a = rng.integers(50, 800, len(a)).astype(float)
    length_b = rng.integers(50, 800, len(a)).astype(float)
    raw = (length_a - length_b) / (length_a + length_b)
    planted = 0.8  # logits per standard deviation of the length difference
    z = (truth[a] - truth[b]) / bt.Scale().per_logit + planted * (raw - raw.mean()) / raw.std()
    outcome = np.where(rng.random(len(a)) < 1 / (1 + np.exp(-z)), 0, 1)
    zeros = np.zeros((len(a), 3))
    data = StyleData.from_arrays(
        [f"m{i}" for i in range(6)],
        a,
        b,
        outcome,
        np.column_stack([length_a, zeros]),
        np.column_stack([length_b, zeros]),
    )
    theta, beta = fit_style(data)
    assert beta[0] == pytest.approx(planted, abs=0.08)
    assert np.abs(beta[1:]).max() < 0.05
    assert spearmanr(theta, truth).statistic == pytest.approx(1.0)


def test_public_arena_release_reproduces_its_leaderboard() -> None:
    if not ARENA.is_file():
        pytest.skip("shared Arena data not present")
    counts = PairCounts.from_arena_pair_counts(ARENA)
    assert counts.total.sum() == pytest.approx(1_670_250)
    scale = bt.Scale(anchor_model="mixtral-8x7b-instruct-v0.1", anchor_value=1114)
    ratings = bt.to_ratings(bt.fit_logits(counts), counts.models, scale)
    top = [counts.models[i] for i in np.argsort(-ratings)[:3]]
    assert top == ["chatgpt-4o-latest", "gemini-1.5-pro-exp-0801", "gpt-4o-2024-05-13"]
    assert ratings[counts.models.index("chatgpt-4o-latest")] == pytest.approx(1315, abs=3)
    z = norm.ppf(0.975)
    errors = bt.rating_standard_errors(
        bt.sandwich_covariance(counts, bt.fit_logits(counts)), counts.models, scale
    )
    assert 1 < z * errors[counts.models.index("chatgpt-4o-latest")] < 10
