"""The arena pipeline, one path from votes to a leaderboard: read battles (a store, battle
files, FastChat vote logs), clean them (`CleaningOptions`), filter them (`--where`), rate
them (`RatingOptions`). `palestra arena rate` and the web UI's Leaderboard both call
`rate_battles`, so the same store with the same options gives the same board, and the
result says which filters ran and what each removed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from palestra.arena.battles import Battle, load_battles
from palestra.arena.settings import CleaningOptions, RatingOptions
from palestra.core.errors import InvalidRequestError

if TYPE_CHECKING:
    from palestra.arena.cleaning import FilterReport
    from palestra.arena.leaderboard import Leaderboard
    from palestra.arena.store import ArenaStore


@dataclass
class RatedBattles:
    """A leaderboard and how it came to be."""

    board: Leaderboard | None  # None: fewer than two models left to rate
    total: int  # battles read
    battles: list[Battle]  # the battles rated (after cleaning and filters)
    reports: list[FilterReport] = field(default_factory=list)
    filters: str = ""  # the cleaning and conditions, in words

    @property
    def kept(self) -> int:
        return len(self.battles)

    def summary(self) -> str:
        removed = ", ".join(f"{r.name}: {r.removed}" for r in self.reports if r.removed)
        return (
            f"{self.kept} of {self.total} battles rated ({self.filters or 'no filters'}; "
            f"removed: {removed or 'nothing'})"
        )


def is_store(source: str) -> bool:
    return "://" in source or source.endswith((".db", ".sqlite", ".sqlite3"))


def require_store(location: str) -> str:
    """The location, if it is a URL or an existing file (a missing SQLite file is an
    error, not a new empty store)."""
    if "://" not in location and not Path(location).is_file():
        raise InvalidRequestError(f"arena store {location!r} does not exist")
    return location


def open_store(location: str) -> ArenaStore:
    """An existing store."""
    from palestra.arena.store import ArenaStore

    return ArenaStore(require_store(location))


def read_battles(source: str, texts: bool = True) -> list[Battle]:
    """Battles from a store (file or URL) or a battle / vote-log file. `texts=False`: from
    a store, the battles' facts only (what rating needs; no conversation is read)."""
    if not is_store(source):
        return load_battles(source)
    store = open_store(source)
    return store.battles() if texts else store.battle_facts()[0]


def rate_battles(
    battles: list[Battle],
    rating: RatingOptions,
    cleaning: CleaningOptions | None = None,
    where: dict[str, str] | None = None,
) -> RatedBattles:
    """Clean (unless `cleaning` is None), filter by `where`, and rate."""
    from palestra.arena.cleaning import clean
    from palestra.arena.leaderboard import compute_leaderboard, filter_battles

    total = len(battles)
    reports: list[FilterReport] = []
    described = []
    if cleaning is not None:
        battles, reports = clean(battles, cleaning)
        described.append(cleaning.describe())
    if where:
        battles = filter_battles(battles, where)
        described.append(", ".join(f"{k}={v}" for k, v in where.items()))
    models = {b.model_a for b in battles} | {b.model_b for b in battles}
    board = compute_leaderboard(battles, rating) if len(models) >= 2 else None
    return RatedBattles(board, total, battles, reports, "; ".join(described))
