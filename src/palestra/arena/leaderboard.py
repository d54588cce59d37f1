"""The leaderboard: ratings with confidence intervals, ranks with ties, vote counts, the
online-Elo reference column, style-controlled ratings and coefficients, and the win-rate
and battle-count matrices; written as markdown, CSV or JSON (the web UI reads the JSON)."""

from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from palestra.arena.battles import Battle
from palestra.arena.ratings import bradley_terry as bt
from palestra.arena.ratings.counts import PairCounts
from palestra.arena.ratings.elo import online_elo
from palestra.arena.ratings.style import FEATURES, StyleData, bootstrap_style, fit_style
from palestra.arena.settings import RatingOptions
from palestra.core.errors import InvalidRequestError


@dataclass
class Row:
    model: str
    rating: float
    lower: float
    upper: float
    rank: int
    battles: int
    elo: float | None = None
    style_rating: float | None = None
    style_lower: float | None = None
    style_upper: float | None = None
    style_rank: int | None = None


@dataclass
class Leaderboard:
    rows: list[Row]
    models: list[str]
    win_rate: list[list[float | None]]
    battle_counts: list[list[int]]
    style_coefficients: dict[str, dict[str, float]] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(
            {
                "rows": [asdict(r) for r in self.rows],
                "models": self.models,
                "win_rate": self.win_rate,
                "battle_counts": self.battle_counts,
                "style_coefficients": self.style_coefficients,
                "meta": self.meta,
            },
            indent=1,
        )

    def to_csv(self) -> str:
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=list(asdict(self.rows[0])))
        writer.writeheader()
        for row in self.rows:
            writer.writerow({k: _round(v) for k, v in asdict(row).items()})
        return out.getvalue()

    def to_markdown(self) -> str:
        styled = self.rows[0].style_rating is not None
        head = "| rank | model | rating | 95% CI | battles |"
        rule = "|---:|---|---:|---|---:|"
        if any(r.elo is not None for r in self.rows):
            head, rule = head + " online Elo |", rule + "---:|"
        if styled:
            head, rule = head + " style-controlled (rank) |", rule + "---|"
        lines = [head, rule]
        for r in self.rows:
            line = (
                f"| {r.rank} | {r.model} | {r.rating:.1f} | "
                f"{r.lower - r.rating:+.1f} / {r.upper - r.rating:+.1f} | {r.battles} |"
            )
            if r.elo is not None:
                line += f" {r.elo:.1f} |"
            if styled:
                line += f" {r.style_rating:.1f} ({r.style_rank}) |"
            lines.append(line)
        if self.style_coefficients:
            lines.append(
                "\nStyle coefficients (logit per standard deviation of the difference, with CI):"
            )
            for name, c in self.style_coefficients.items():
                lines.append(f"- {name}: {c['value']:+.3f} [{c['lower']:+.3f}, {c['upper']:+.3f}]")
        return "\n".join(lines) + "\n"


def _round(value: Any) -> Any:
    return round(value, 2) if isinstance(value, float) else value


def _interval(samples: np.ndarray, confidence: float) -> tuple[np.ndarray, np.ndarray]:
    tail = (1 - confidence) / 2 * 100
    lower, upper = np.percentile(samples, [tail, 100 - tail], axis=0)
    return lower, upper


def rate_counts(
    counts: PairCounts, options: RatingOptions
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(ratings, lower, upper, ranks) from Bradley-Terry with the chosen interval."""
    logits = bt.fit_logits(counts)
    ratings = bt.to_ratings(logits, counts.models, options.bt_scale)
    if options.interval == "sandwich":
        from scipy.stats import norm

        z = float(norm.ppf(0.5 + options.confidence / 2))
        errors = bt.rating_standard_errors(
            bt.sandwich_covariance(counts, logits), counts.models, options.bt_scale
        )
        lower, upper = ratings - z * errors, ratings + z * errors
    else:
        samples = bt.to_ratings(
            bt.bootstrap_logits(counts, options.rounds, options.seed, logits),
            counts.models,
            options.bt_scale,
        )
        lower, upper = _interval(samples, options.confidence)
    return ratings, lower, upper, bt.rank_with_ties(lower, upper)


def leaderboard_from_counts(
    counts: PairCounts, options: RatingOptions, battles: list[Battle] | None = None
) -> Leaderboard:
    ratings, lower, upper, ranks = rate_counts(counts, options)
    per_model = counts.battles_per_model()
    elo = (
        online_elo(
            battles,
            counts.models,
            k=options.elo_k,
            scale=options.bt_scale.scale,
            base=options.bt_scale.base,
            initial=options.bt_scale.anchor_value,
        )
        if battles
        else None
    )
    rows = [
        Row(
            model,
            float(ratings[i]),
            float(lower[i]),
            float(upper[i]),
            int(ranks[i]),
            int(per_model[i]),
            float(elo[i]) if elo is not None else None,
        )
        for i, model in enumerate(counts.models)
    ]
    coefficients: dict[str, dict[str, float]] = {}
    unstyled = 0
    if options.style_control:
        if battles is None:
            raise InvalidRequestError("style control needs battles with answers, not counts")
        coefficients, unstyled = _add_style(rows, battles, options)
    order = sorted(range(len(rows)), key=lambda i: -rows[i].rating)
    rate, battle_matrix = counts.matrices()
    return Leaderboard(
        rows=[rows[i] for i in order],
        models=[counts.models[i] for i in order],
        win_rate=[
            [None if math.isnan(rate[i, j]) else round(float(rate[i, j]), 4) for j in order]
            for i in order
        ],
        battle_counts=[[int(battle_matrix[i, j]) for j in order] for i in order],
        style_coefficients=coefficients,
        meta={
            "battles": int(counts.total.sum()),
            "models": len(rows),
            "interval": options.interval,
            "rounds": options.rounds,
            "confidence": options.confidence,
            "scale": options.bt_scale.scale,
            "base": options.bt_scale.base,
            "anchor_model": options.bt_scale.anchor_model,
            "anchor_value": options.bt_scale.anchor_value,
            "style_control_skipped_battles": unstyled,
        },
    )


def _add_style(
    rows: list[Row], battles: list[Battle], options: RatingOptions
) -> tuple[dict[str, dict[str, float]], int]:
    """Style-controlled ratings into `rows`; (coefficients, battles without answers)."""
    data, skipped = StyleData.from_battles(battles)
    if len(data.a) == 0:
        raise InvalidRequestError(
            "style control needs battles with conversation texts or conv_metadata; these have none"
        )
    theta, beta = fit_style(data)
    thetas, betas = bootstrap_style(data, options.rounds, options.seed)
    ratings = bt.to_ratings(theta, data.models, options.bt_scale)
    lower, upper = _interval(
        bt.to_ratings(thetas, data.models, options.bt_scale), options.confidence
    )
    ranks = bt.rank_with_ties(lower, upper)
    index = {m: i for i, m in enumerate(data.models)}
    for row in rows:
        if row.model in index:
            i = index[row.model]
            row.style_rating, row.style_lower, row.style_upper = (
                float(ratings[i]),
                float(lower[i]),
                float(upper[i]),
            )
            row.style_rank = int(ranks[i])
    beta_lower, beta_upper = _interval(betas, options.confidence)
    result = {
        name: {
            "value": float(beta[k]),
            "lower": float(beta_lower[k]),
            "upper": float(beta_upper[k]),
        }
        for k, name in enumerate(FEATURES)
    }
    return result, skipped


def compute_leaderboard(battles: list[Battle], options: RatingOptions | None = None) -> Leaderboard:
    if not battles:
        raise InvalidRequestError("no battles to rate (after filters)")
    options = options or RatingOptions()
    return leaderboard_from_counts(PairCounts.from_battles(battles), options, battles)


def parse_conditions(texts: list[str]) -> dict[str, str]:
    """`--where FIELD=VALUE` options as conditions for `filter_battles`."""
    conditions = {}
    for text in texts:
        name, sep, value = text.partition("=")
        if not sep or not name:
            raise InvalidRequestError(f"--where {text!r}: expected FIELD=VALUE")
        conditions[name] = value
    return conditions


def field_values(battle: Battle, name: str) -> list[str]:
    """A field's values as text: one, or each item of a list field. `categories` are the
    store's labels, or the rules' labels for battles read from files."""
    value = battle.field(name)
    if name == "categories" and value is None:
        from palestra.arena.categories import label

        value = label(battle)
    return [str(v) for v in value] if isinstance(value, list | tuple) else [str(value)]


def filter_battles(battles: list[Battle], conditions: dict[str, str]) -> list[Battle]:
    """Battles whose fields equal the given values (as text; a list field such as
    `categories` matches when it holds the value); `turn` accepts `>1`."""

    def matches(battle: Battle) -> bool:
        for name, wanted in conditions.items():
            value = battle.field(name)
            if wanted.startswith(">") and isinstance(value, int | float):
                if not value > float(wanted[1:]):
                    return False
            elif wanted not in field_values(battle, name):
                return False
        return True

    return [b for b in battles if matches(b)]
