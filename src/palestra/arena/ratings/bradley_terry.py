"""Bradley-Terry maximum likelihood on aggregated pair counts, with bootstrap and
closed-form (sandwich / CLT) confidence intervals.

P(a beats b) = 1 / (1 + base ** ((r_b - r_a) / scale)); ties count half a win each way.
Ratings are fitted in logit units with scipy's L-BFGS and an analytic gradient, then scaled
(x scale / ln base) and anchored: the mean at a value, or one model at a value.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.optimize import minimize
from scipy.special import expit

from palestra.arena.ratings.counts import PairCounts
from palestra.arena.settings import ELO_BASE, ELO_MEAN, ELO_SCALE
from palestra.core.errors import InvalidRequestError

RIDGE = 1e-4  # keeps an unbeaten model's rating finite; negligible otherwise


@dataclass(frozen=True)
class Scale:
    scale: float = ELO_SCALE
    base: float = ELO_BASE
    anchor_value: float = ELO_MEAN
    anchor_model: str | None = None  # None: the mean sits at anchor_value

    @property
    def per_logit(self) -> float:
        return self.scale / math.log(self.base)


def _loss_and_grad(
    theta: np.ndarray, a: np.ndarray, b: np.ndarray, score: np.ndarray, total: np.ndarray
) -> tuple[float, np.ndarray]:
    diff = theta[a] - theta[b]
    loss = float(
        np.sum(score * np.logaddexp(0, -diff) + (total - score) * np.logaddexp(0, diff))
        + RIDGE * theta @ theta
    )
    residual = total * expit(diff) - score
    size = theta.size
    grad = np.bincount(a, residual, size) - np.bincount(b, residual, size) + 2 * RIDGE * theta
    return loss, grad


def fit_logits(counts: PairCounts, start: np.ndarray | None = None) -> np.ndarray:
    """Maximum-likelihood strengths in logit units, centred at 0."""
    size = len(counts.models)
    if size < 2:
        raise InvalidRequestError("ratings need battles between at least two models")
    x0 = np.zeros(size) if start is None else start
    result = minimize(
        _loss_and_grad,
        x0,
        args=(counts.a, counts.b, counts.score_a, counts.total),
        jac=True,
        method="L-BFGS-B",
        options={"maxiter": 1000, "gtol": 1e-8},
    )
    theta = np.asarray(result.x)
    return theta - theta.mean()


def to_ratings(logits: np.ndarray, models: list[str], scale: Scale) -> np.ndarray:
    """Logits (..., M) to anchored ratings."""
    ratings = logits * scale.per_logit
    if scale.anchor_model is None:
        shift = scale.anchor_value - ratings.mean(axis=-1, keepdims=True)
    else:
        if scale.anchor_model not in models:
            raise InvalidRequestError(
                f"anchor model {scale.anchor_model!r} has no battles; models: {', '.join(models)}"
            )
        shift = scale.anchor_value - ratings[..., [models.index(scale.anchor_model)]]
    return np.asarray(ratings + shift)


def bootstrap_logits(
    counts: PairCounts, rounds: int, seed: int = 0, start: np.ndarray | None = None
) -> np.ndarray:
    """`rounds` refits on battles resampled with replacement (multinomial over the
    aggregated (pair, outcome) cells, which is resampling battles). Shape (rounds, M)."""
    rng = np.random.default_rng(seed)
    cells = np.concatenate([counts.wins_a, counts.wins_b, counts.ties])
    n_battles = round(float(cells.sum()))
    probabilities = cells / cells.sum()
    rows = len(counts.a)
    start = fit_logits(counts) if start is None else start
    samples = np.empty((rounds, len(counts.models)))
    for index in range(rounds):
        drawn = rng.multinomial(n_battles, probabilities).astype(float)
        resampled = counts.with_counts(drawn[:rows], drawn[rows : 2 * rows], drawn[2 * rows :])
        samples[index] = fit_logits(resampled, start)
    return samples


def sandwich_covariance(counts: PairCounts, logits: np.ndarray) -> np.ndarray:
    """Robust (sandwich) covariance of the logits: H^+ S H^+, with H the Fisher information
    of the aggregated model and S the sum of per-battle score outer products."""
    size = len(counts.models)
    p = expit(logits[counts.a] - logits[counts.b])
    information = counts.total * p * (1 - p)
    spread = counts.wins_a * (1 - p) ** 2 + counts.wins_b * p**2 + counts.ties * (0.5 - p) ** 2

    def laplacian(weights: np.ndarray) -> np.ndarray:
        matrix = np.zeros((size, size))
        np.add.at(matrix, (counts.a, counts.b), -weights)
        np.add.at(matrix, (counts.b, counts.a), -weights)
        matrix[np.diag_indices(size)] = np.bincount(counts.a, weights, size) + np.bincount(
            counts.b, weights, size
        )
        return matrix

    bread = np.linalg.pinv(laplacian(information))
    return np.asarray(bread @ laplacian(spread) @ bread)


def rating_standard_errors(covariance: np.ndarray, models: list[str], scale: Scale) -> np.ndarray:
    """Standard errors of anchored ratings (relative to the anchor model, if any)."""
    if scale.anchor_model is None:
        variance = np.diag(covariance)
    else:
        k = models.index(scale.anchor_model)
        variance = np.diag(covariance) + covariance[k, k] - 2 * covariance[:, k]
    return np.sqrt(np.clip(variance, 0, None)) * scale.per_logit


def rank_with_ties(lower: np.ndarray, upper: np.ndarray) -> np.ndarray:
    """1 + the number of models whose lower bound beats this model's upper bound."""
    return 1 + (lower[None, :] > upper[:, None]).sum(axis=1)
