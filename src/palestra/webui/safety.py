"""What keeps the web UI safe to open to the public: a moderation hook and per-user rate
limits.

A moderator is any object with `check(text) -> Verdict`. The built-in `KeywordModerator`
flags text containing listed words (whole words, case-insensitive). Others plug in as
`module:factory` (`--moderation mypackage.mod:make_moderator`). Moderation is off unless
configured; battles can force it on (`--moderate-battles`). Flagged input is not sent to
any model; the user sees why.

`RateLimiter` allows each user at most `limit` messages (or votes) in any `window` seconds
(a sliding window kept in the arena store, so it holds across web server processes).
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from palestra.core.errors import InvalidRequestError

if TYPE_CHECKING:
    from palestra.arena.store import ArenaStore

DEFAULT_BLOCKED_WORDS: tuple[str, ...] = ()  # none by default: a deployment brings its list


@dataclass(frozen=True)
class Verdict:
    flagged: bool
    reason: str = ""


class Moderator(Protocol):
    def check(self, text: str) -> Verdict: ...


class KeywordModerator:
    def __init__(self, words: Iterable[str]):
        self.words = sorted({w.strip().lower() for w in words if w.strip()})
        if not self.words:
            raise InvalidRequestError("the keyword moderator needs at least one word")
        alternatives = "|".join(re.escape(w) for w in self.words)
        self.pattern = re.compile(rf"(?<!\w)({alternatives})(?!\w)", re.IGNORECASE)

    @classmethod
    def from_file(cls, path: str | Path) -> KeywordModerator:
        file = Path(path)
        if not file.is_file():
            raise InvalidRequestError(f"moderation word list {str(file)!r} does not exist")
        lines = file.read_text("utf-8").splitlines()
        return cls(line for line in lines if not line.lstrip().startswith("#"))

    def check(self, text: str) -> Verdict:
        found = self.pattern.search(text)
        if found:
            return Verdict(True, f"it contains a blocked word ({found.group(1).lower()!r})")
        return Verdict(False)


def load_moderator(spec: str, words_file: str | None = None) -> Moderator:
    """`keyword` (with a word list file) or `module:factory` returning a moderator."""
    if spec == "keyword":
        if not words_file:
            raise InvalidRequestError("--moderation keyword needs --moderation-words FILE")
        return KeywordModerator.from_file(words_file)
    module_name, _, attribute = spec.partition(":")
    if not attribute:
        raise InvalidRequestError(
            f"--moderation must be 'keyword' or 'module:factory'; got {spec!r}"
        )
    try:
        factory = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError) as exc:
        raise InvalidRequestError(f"cannot load moderator {spec!r}: {exc}") from exc
    moderator = factory()
    if not callable(getattr(moderator, "check", None)):
        raise InvalidRequestError(f"moderator {spec!r} has no check(text) method")
    return moderator


class RateLimiter:
    """At most `limit` of one kind of action (messages, votes) per user in any `window`
    seconds, counted in the arena store so that every web server on it shares the count."""

    def __init__(self, store: ArenaStore, limit: int, window: float, kind: str = "message"):
        if limit < 1 or window <= 0:
            raise InvalidRequestError("rate limit must be N/SECONDS with N >= 1, SECONDS > 0")
        self.store = store
        self.limit = limit
        self.window = window
        self.kind = kind

    @classmethod
    def parse(cls, spec: str, store: ArenaStore, kind: str = "message") -> RateLimiter:
        """`30/60`: 30 per 60 seconds."""
        try:
            limit, window = spec.split("/")
            return cls(store, int(limit), float(window), kind)
        except ValueError as exc:
            raise InvalidRequestError(
                f"rate limit must look like 30/60 (count/seconds); got {spec!r}"
            ) from exc

    def allow(self, user: str, now: float | None = None) -> float:
        """0 when the user may go ahead now (and it is counted), else seconds to wait."""
        return self.store.allowance(self.kind, user, self.limit, self.window, now)
