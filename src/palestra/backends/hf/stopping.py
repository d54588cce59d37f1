"""Stop strings during streaming: never emit a stop string, and hold back any tail of the
text that could still become one. Pure string logic, no torch."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class StopStringMatcher:
    """Feed it the whole generated text so far; it says what is safe to emit."""

    stops: tuple[str, ...]
    emitted: int = 0
    include: bool = False  # the stop string is part of the text (vLLM's include_stop_str)
    _longest: int = field(init=False)
    _searched: int = field(init=False, default=0)

    def __post_init__(self) -> None:
        self.stops = tuple(s for s in self.stops if s)
        self._longest = max((len(s) for s in self.stops), default=0)

    def update(self, text: str, hold: bool = False) -> tuple[str, bool]:
        """(new text safe to emit, whether a stop string was reached). With `hold`, stop
        strings do not count yet (vLLM's min_tokens): text up to now is emitted as is."""
        if hold:
            delta = text[self.emitted :]
            self.emitted = self._searched = len(text)
            return delta, False
        search_from = max(self._searched, self.emitted - self._longest, 0)
        hits = [(i, s) for s in self.stops if (i := text.find(s, search_from)) != -1]
        if hits:
            index, stop = min(hits)
            end = index + len(stop) if self.include else index
            delta = text[self.emitted : end] if end > self.emitted else ""
            self.emitted = max(self.emitted, end)
            return delta, True
        safe = len(text) - self._partial_suffix(text)
        delta = text[self.emitted : safe] if safe > self.emitted else ""
        self.emitted = max(self.emitted, safe)
        return delta, False

    def flush(self, text: str) -> str:
        """At the end of generation: whatever was held back."""
        delta = text[self.emitted :]
        self.emitted = len(text)
        return delta

    def _partial_suffix(self, text: str) -> int:
        """Length of the longest tail of `text` that is a proper prefix of a stop string."""
        best = 0
        for stop in self.stops:
            for size in range(min(len(stop) - 1, len(text)), best, -1):
                if text.endswith(stop[:size]):
                    best = size
                    break
        return best
