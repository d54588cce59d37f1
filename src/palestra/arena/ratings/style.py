"""Style control: Bradley-Terry with extra per-battle features for the difference in
answer length and markdown (headers, list items, bold), so a leaderboard can be read with
and without style effects (as LMArena's style control).

Each feature is (a - b) / (a + b) over the battle's assistant answers, then standardised;
the coefficients say how much each style difference moves the win probability.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
from scipy.optimize import minimize
from scipy.special import expit

from palestra.arena.battles import Battle
from palestra.arena.ratings.counts import battle_arrays

FEATURES = ("length", "headers", "lists", "bold")
HEADER = re.compile(r"^#{1,6}\s", re.M)
LIST_ITEM = re.compile(r"^\s*(?:[-*+]|\d+\.)\s", re.M)
BOLD = re.compile(r"\*\*[^*\n]+\*\*|__[^_\n]+__")
RIDGE = 1e-4


def style_counts(texts: list[str]) -> np.ndarray:
    text = "\n".join(texts)
    return np.array(
        [
            len(text.split()),
            len(HEADER.findall(text)),
            len(LIST_ITEM.findall(text)),
            len(BOLD.findall(text)),
        ],
        dtype=float,
    )


def battle_style(battle: Battle) -> tuple[np.ndarray, np.ndarray] | None:
    """Style counts of both sides: kept with the vote (the store's facts), from FastChat's
    conv_metadata, or from the conversations."""
    kept = battle.extra.get("style")
    if isinstance(kept, list | tuple) and len(kept) == 2:
        return np.asarray(kept[0], dtype=float), np.asarray(kept[1], dtype=float)
    meta = battle.extra.get("conv_metadata")
    if isinstance(meta, dict) and "sum_assistant_a_tokens" in meta:

        def side(s: str) -> np.ndarray:
            return np.array(
                [
                    meta[f"sum_assistant_{s}_tokens"],
                    sum((meta.get(f"header_count_{s}") or {}).values()),
                    sum((meta.get(f"list_count_{s}") or {}).values()),
                    sum((meta.get(f"bold_count_{s}") or {}).values()),
                ],
                dtype=float,
            )

        return side("a"), side("b")
    answers_a, answers_b = battle.answers("a"), battle.answers("b")
    if not answers_a and not answers_b:
        return None
    return style_counts(answers_a), style_counts(answers_b)


@dataclass(frozen=True)
class StyleData:
    """Per-battle arrays for the contextual model."""

    models: list[str]
    a: np.ndarray
    b: np.ndarray
    score: np.ndarray  # 1 a wins, 0 b wins, 0.5 tie
    features: np.ndarray  # (battles, F), standardised

    @classmethod
    def from_arrays(
        cls,
        models: list[str],
        a: np.ndarray,
        b: np.ndarray,
        outcome: np.ndarray,
        style_a: np.ndarray,
        style_b: np.ndarray,
    ) -> StyleData:
        with np.errstate(invalid="ignore", divide="ignore"):
            raw = np.where(style_a + style_b > 0, (style_a - style_b) / (style_a + style_b), 0.0)
        spread = raw.std(axis=0)
        features = (raw - raw.mean(axis=0)) / np.where(spread > 0, spread, 1.0)
        score = np.choose(np.asarray(outcome), [1.0, 0.0, 0.5])
        return cls(models, np.asarray(a), np.asarray(b), score, features)

    @classmethod
    def from_battles(cls, battles: list[Battle]) -> tuple[StyleData, int]:
        """(data, number of battles left out for lack of answers to measure)."""
        styled = [(b, style) for b in battles if (style := battle_style(b)) is not None]
        models, a, b_, outcome = battle_arrays([b for b, _ in styled])
        style_a = np.array([s[0] for _, s in styled]).reshape(-1, len(FEATURES))
        style_b = np.array([s[1] for _, s in styled]).reshape(-1, len(FEATURES))
        return cls.from_arrays(models, a, b_, outcome, style_a, style_b), len(battles) - len(styled)


def fit_style(
    data: StyleData, weights: np.ndarray | None = None, start: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """(model logits centred at 0, style coefficients in logit units)."""
    size, n_features = len(data.models), data.features.shape[1]
    w = np.ones(len(data.a)) if weights is None else weights

    def loss_and_grad(params: np.ndarray) -> tuple[float, np.ndarray]:
        theta, beta = params[:size], params[size:]
        z = theta[data.a] - theta[data.b] + data.features @ beta
        loss = float(
            np.sum(w * (data.score * np.logaddexp(0, -z) + (1 - data.score) * np.logaddexp(0, z)))
            + RIDGE * params @ params
        )
        residual = w * (expit(z) - data.score)
        grad = np.empty_like(params)
        grad[:size] = np.bincount(data.a, residual, size) - np.bincount(data.b, residual, size)
        grad[size:] = data.features.T @ residual
        return loss, grad + 2 * RIDGE * params

    x0 = np.zeros(size + n_features) if start is None else start
    result = minimize(
        loss_and_grad, x0, jac=True, method="L-BFGS-B", options={"maxiter": 1000, "gtol": 1e-7}
    )
    theta = result.x[:size] - result.x[:size].mean()
    return theta, result.x[size:]


def newton_refit(
    data: StyleData, weights: np.ndarray, start: np.ndarray, steps: int = 2
) -> np.ndarray:
    """Refit from a nearby optimum with full Newton steps: the Hessian is only
    (models + features)^2, built with a few bincounts, so each step costs a handful of
    passes over the battles instead of an L-BFGS run."""
    size = len(data.models)
    params = start.copy()
    pair = data.a * size + data.b
    for _ in range(steps):
        theta, beta = params[:size], params[size:]
        z = theta[data.a] - theta[data.b] + data.features @ beta
        p = expit(z)
        residual = weights * (p - data.score)
        curvature = weights * p * (1 - p)
        grad = (
            np.concatenate(
                [
                    np.bincount(data.a, residual, size) - np.bincount(data.b, residual, size),
                    data.features.T @ residual,
                ]
            )
            + 2 * RIDGE * params
        )
        pair_curvature = np.bincount(pair, curvature, size * size).reshape(size, size)
        model_block = -(pair_curvature + pair_curvature.T)
        model_block[np.diag_indices(size)] = pair_curvature.sum(axis=1) + pair_curvature.sum(axis=0)
        weighted = data.features * curvature[:, None]
        cross = np.stack(
            [
                np.bincount(data.a, weighted[:, j], size)
                - np.bincount(data.b, weighted[:, j], size)
                for j in range(weighted.shape[1])
            ],
            axis=1,
        )
        hessian = np.block([[model_block, cross], [cross.T, data.features.T @ weighted]])
        hessian[np.diag_indices_from(hessian)] += 2 * RIDGE
        params = params - np.linalg.solve(hessian, grad)
    params[:size] -= params[:size].mean()
    return params


def bootstrap_style(data: StyleData, rounds: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Refits on battles resampled with replacement (multinomial weights), each by Newton
    steps from the full fit. Shapes (rounds, M) and (rounds, F)."""
    rng = np.random.default_rng(seed)
    theta, beta = fit_style(data)
    start = np.concatenate([theta, beta])
    n, size = len(data.a), theta.size
    thetas, betas = np.empty((rounds, size)), np.empty((rounds, beta.size))
    for index in range(rounds):
        weights = rng.multinomial(n, np.full(n, 1.0 / n)).astype(float)
        params = newton_refit(data, weights, start)
        thetas[index], betas[index] = params[:size], params[size:]
    return thetas, betas
