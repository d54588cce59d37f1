"""The arena pipeline's options: which battles count (`CleaningOptions`) and how they are
rated (`RatingOptions`), shared by `palestra arena clean/rate`, the web UI's Leaderboard
and the judge's ratings. Light: no numpy until a rating is computed."""

from __future__ import annotations

from functools import cached_property
from typing import TYPE_CHECKING, Literal

from palestra.core.errors import InvalidRequestError
from palestra.core.settings import Settings, option

if TYPE_CHECKING:
    from palestra.arena.ratings.bradley_terry import Scale

ELO_SCALE = 400.0  # rating points per factor of ELO_BASE in the odds
ELO_BASE = 10.0
ELO_MEAN = 1000.0  # where the mean rating sits when no model is anchored


class CleaningOptions(Settings):
    """Which battles count: the filters `arena clean`, `arena rate` and the web UI's
    Leaderboard apply before rating."""

    anony_only: bool = option(
        True, "Keep anonymous battles only.", flag="--anony-only", secondary="--include-named"
    )
    dedup: bool = option(True, "Drop repeated votes on the same prompt.", secondary="--no-dedup")
    drop_identity_leaks: bool = option(
        True, "Drop battles whose answers name a model.", secondary="--keep-identity-leaks"
    )
    drop_empty_or_errored: bool = option(
        True, "Drop battles with an empty or errored answer.", secondary="--keep-errored"
    )
    daily_vote_cap: int | None = option(None, "Most votes counted per user per day.")
    anomaly_alpha: float | None = option(
        0.05, "Significance for flagging anomalous voters; 0 disables."
    )
    anomaly_min_votes: int = option(5, "Votes a user needs before they can be flagged.")

    def describe(self) -> str:
        """The filters in force, in words (shown under every leaderboard)."""
        parts = ["anonymous battles only" if self.anony_only else "named battles included"]
        if self.dedup:
            parts.append("duplicates dropped")
        if self.drop_identity_leaks:
            parts.append("identity leaks dropped")
        if self.drop_empty_or_errored:
            parts.append("empty or errored answers dropped")
        if self.daily_vote_cap:
            parts.append(f"at most {self.daily_vote_cap} votes per user per day")
        if self.anomaly_alpha:
            parts.append(f"anomalous voters dropped (alpha={self.anomaly_alpha})")
        return ", ".join(parts)


class RatingOptions(Settings):
    """How ratings and their intervals are computed."""

    interval: Literal["bootstrap", "sandwich"] = option(
        "bootstrap", "Confidence intervals: bootstrap, or sandwich (closed form)."
    )
    rounds: int = option(100, "Bootstrap rounds.")
    seed: int = option(0, "Bootstrap seed.")
    confidence: float = option(0.95, "Confidence level of the intervals.")
    anchor: str | None = option(
        None, "MODEL=RATING pins a model's rating; RATING alone sets the mean."
    )
    scale: float = option(ELO_SCALE, "Rating points per factor of --base in odds.")
    base: float = option(ELO_BASE, "Odds base of the rating scale.")
    elo_k: float = option(4.0, "Online Elo K (the reference column).", flag="--k")
    style_control: bool = option(False, "Also rate with style (length, markdown) controlled.")

    @cached_property
    def bt_scale(self) -> Scale:
        """The rating scale, with the anchor parsed (a bad anchor: InvalidRequestError)."""
        from palestra.arena.ratings.bradley_terry import Scale

        if not self.anchor:
            return Scale(self.scale, self.base, ELO_MEAN)
        name, sep, value = self.anchor.rpartition("=")
        try:
            anchor_value = float(value)
        except ValueError:
            raise InvalidRequestError(
                f"--anchor {self.anchor!r}: expected MODEL=RATING or RATING (the mean)"
            ) from None
        return Scale(self.scale, self.base, anchor_value, name if sep else None)
