"""Battle pairing: weights, boosts, targets, outages, never-paired groups, left/right."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from palestra.arena.matchmaking import MatchmakingConfig, draw_pair
from palestra.core.errors import InvalidRequestError, NoWorkerError

MODELS = ["a", "b", "c", "d"]


def draws(config: MatchmakingConfig, n: int = 20000, models: list[str] = MODELS) -> list:
    rng = random.Random(0)
    return [draw_pair(models, config, rng) for _ in range(n)]


def appearances(pairs: list) -> Counter:
    return Counter(m for pair in pairs for m in pair)


def test_uniform_by_default_and_sides_are_random() -> None:
    pairs = draws(MatchmakingConfig())
    assert all(left != right for left, right in pairs)
    counts = appearances(pairs)
    assert all(abs(counts[m] / 10000 - 1) < 0.05 for m in MODELS)
    left = Counter(pair[0] for pair in pairs)
    assert all(abs(left[m] / 5000 - 1) < 0.07 for m in MODELS)


def test_weights_boosts_and_outage() -> None:
    config = MatchmakingConfig.from_dict(
        {"sampling_weights": {"a": 3.0}, "boost_models": ["b"], "outage_models": ["d"]}
    )
    pairs = draws(config)
    counts = appearances(pairs)
    assert counts["d"] == 0
    # First pick by boosted weight (a 3, b 5, c 1 of 9), rival by plain weight (a 3, b 1,
    # c 1) among the others: P(a in battle) = 3/9 + 5/9 * 3/4 + 1/9 * 3/4 = 5/6,
    # P(b) = 5/9 + 3/9 * 1/2 + 1/9 * 1/4 = 3/4, P(c) = 1/9 + 3/9 * 1/2 + 5/9 * 1/4 = 5/12.
    expected = {"a": 5 / 6, "b": 3 / 4, "c": 5 / 12}
    for model, share in expected.items():
        assert counts[model] / len(pairs) == pytest.approx(share, abs=0.015)


def test_battle_targets_get_half_the_weight() -> None:
    config = MatchmakingConfig.from_dict(
        {"boost_models": ["a"], "boost_factor": 1000, "battle_targets": {"a": ["d"]}}
    )
    pairs = draws(config, 4000)
    rivals = Counter(next(m for m in pair if m != "a") for pair in pairs if "a" in pair)
    # total weight 1000 + 3: the target's weight is 501.5 against 1 and 1
    assert rivals["d"] / sum(rivals.values()) > 0.98


def test_never_paired_group() -> None:
    config = MatchmakingConfig.from_dict({"never_paired": [["a", "b", "c"]]})
    pairs = draws(config, 3000)
    assert all("d" in pair for pair in pairs)


def test_errors() -> None:
    with pytest.raises(NoWorkerError, match="no model can battle"):
        draw_pair(["a", "b"], MatchmakingConfig.from_dict({"outage_models": ["a", "b"]}))
    with pytest.raises(NoWorkerError, match="no model may battle"):
        draw_pair(["a"], MatchmakingConfig())
    with pytest.raises(InvalidRequestError, match="unknown arena config field"):
        MatchmakingConfig.from_dict({"weights": {}})
