"""Moderation hook and rate limits."""

from __future__ import annotations

from pathlib import Path

import pytest

from palestra.arena.store import ArenaStore
from palestra.core.errors import InvalidRequestError
from palestra.webui.safety import KeywordModerator, RateLimiter, Verdict, load_moderator


class Shouting:
    def check(self, text: str) -> Verdict:
        return Verdict(text.isupper(), "no shouting")


def make_shouting() -> Shouting:
    return Shouting()


def test_keyword_moderator_whole_words(tmp_path: Path) -> None:
    words = tmp_path / "words.txt"
    words.write_text("# blocked\nforbidden\nbad word\n")
    moderator = load_moderator("keyword", str(words))
    assert moderator.check("This is FORBIDDEN.").flagged
    assert "forbidden" in moderator.check("forbidden!").reason
    assert moderator.check("a bad word here").flagged
    assert not moderator.check("unforbiddenly fine").flagged
    assert not moderator.check("a badword").flagged
    with pytest.raises(InvalidRequestError, match="at least one word"):
        KeywordModerator(["", " "])


def test_plugged_moderator_and_errors() -> None:
    moderator = load_moderator("tests.unit.webui.test_safety:make_shouting")
    assert moderator.check("HELLO").flagged and not moderator.check("hello").flagged
    with pytest.raises(InvalidRequestError, match="cannot load moderator"):
        load_moderator("no.such.module:factory")
    with pytest.raises(InvalidRequestError, match="needs --moderation-words"):
        load_moderator("keyword")


def test_rate_limiter_sliding_window(store_location: str) -> None:
    store = ArenaStore(store_location)
    limiter = RateLimiter.parse("3/10", store)
    assert [limiter.allow("u", t) for t in (0, 1, 2)] == [0, 0, 0]
    assert limiter.allow("u", 3) == pytest.approx(7)  # wait until the first one ages out
    assert limiter.allow("other", 3) == 0
    assert RateLimiter.parse("1/10", store, "vote").allow("u", 3) == 0  # its own count
    assert limiter.allow("u", 10.5) == 0
    assert limiter.allow("u", 10.6) == pytest.approx(0.4)  # 1, 2, 10.5 (refusals not counted)
    with pytest.raises(InvalidRequestError, match="30/60"):
        RateLimiter.parse("thirty", store)
