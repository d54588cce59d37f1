"""`LiveBoard`: a store's leaderboards kept current as votes arrive, for the web UI's
Leaderboard tab and its JSON over HTTP. Each refresh reads only the battles' facts stored
since the last one (`ArenaStore.battle_facts`) and rates everything held through the arena
pipeline, so a board equals `palestra arena rate STORE` with the same options."""

from __future__ import annotations

import threading
import time
from collections import Counter
from dataclasses import dataclass

from palestra.arena.battles import Battle
from palestra.arena.pipeline import RatedBattles
from palestra.arena.settings import CleaningOptions, RatingOptions
from palestra.arena.store import ArenaStore

BoardKey = tuple[str | None, bool]  # (category or None for all, style control)


@dataclass
class Computed:
    """One board as last computed."""

    result: RatedBattles
    last_event: int  # the newest vote it counts
    updated: float  # wall-clock time
    seconds: float  # how long it took
    due: float  # monotonic time from which it may be computed again


class LiveBoard:
    """The leaderboards of a store (overall and per category, with or without style
    control), refreshed from the votes that arrived since the last refresh: a refresh reads
    only the new battles' facts (never a conversation) and rates the battles held so far.
    A page never waits for a refresh once a board exists: it gets the last one while a
    background thread computes the next. Each board is recomputed no sooner than 2 s, and
    than ten times its last computation, after the previous one, so a large arena spends
    at most a tenth of a core on a board however often pages ask."""

    MIN_INTERVAL = 2.0
    COST_FACTOR = 10.0

    def __init__(self, store: ArenaStore, rating: RatingOptions, cleaning: CleaningOptions):
        self.store = store
        self.rating = rating
        self.cleaning = cleaning
        self.battles: list[Battle] = []
        self.last_event = 0
        self.category_counts: Counter[str] = Counter()  # battles per category, as stored
        self.boards: dict[BoardKey, Computed] = {}
        self._lock = threading.Lock()  # one refresh at a time
        self._background: dict[BoardKey, threading.Thread] = {}

    def current(self, category: str | None = None, style: bool = False) -> RatedBattles:
        """The last board for (category, style); the first is computed at once, later
        ones in the background when their spacing has passed."""
        key = (category, style)
        kept = self.boards.get(key)
        if kept is None:
            return self.refresh(category, style)
        thread = self._background.get(key)
        if time.monotonic() >= kept.due and not (thread and thread.is_alive()):
            thread = threading.Thread(target=self.refresh, args=key, daemon=True)
            self._background[key] = thread
            thread.start()
        return kept.result

    def refresh(self, category: str | None = None, style: bool = False) -> RatedBattles:
        """Read the new votes' facts and rate (now, in this thread)."""
        from palestra.arena.pipeline import rate_battles

        with self._lock:
            started = time.monotonic()
            new, self.last_event = self.store.battle_facts(after=self.last_event)
            self.battles.extend(new)  # only refreshes touch it, one at a time
            self.category_counts.update(c for b in new for c in b.extra["categories"])
            key = (category, style)
            kept = self.boards.get(key)
            # Behind, also when another board's refresh read the new votes.
            if kept is None or kept.last_event < self.last_event:
                rating = (
                    self.rating.model_copy(update={"style_control": True}) if style else self.rating
                )
                where = {"categories": category} if category else None
                result = rate_battles(self.battles, rating, self.cleaning, where)
                seconds = time.monotonic() - started
                kept = Computed(result, self.last_event, time.time(), seconds, 0.0)
                self.boards[key] = kept
            spacing = max(self.MIN_INTERVAL, self.COST_FACTOR * kept.seconds)
            kept.due = time.monotonic() + spacing
            return kept.result
