"""Reading a judge's verdict out of its free-text judgment.

Single grading expects `[[rating]]` (MT-bench: "Rating: [[5]]"); `[rating]` is accepted
when the double-bracket form is missing. Pairwise expects `[[A]]`, `[[B]]` or `[[C]]` (tie);
prompts whose output format is two scores (`[[rating_a,rating_b]]`) are read as a tie when
the scores differ by at most 0.1. When a judgment contains several verdicts the last one
counts (judges often quote the format before giving their answer). Anything else is
unparsable: `None`, and the caller asks again.
"""

from __future__ import annotations

import re
from typing import Literal

PairVerdict = Literal["A", "B", "tie"]

_NUMBER = r"(\d+(?:\.\d+)?)"
_RATING_STRICT = re.compile(r"\[\[\s*" + _NUMBER + r"\s*\]\]")
_RATING_LOOSE = re.compile(r"\[\s*" + _NUMBER + r"\s*\]")
_TWO_SCORES = re.compile(r"\[\[\s*" + _NUMBER + r"\s*,\s*" + _NUMBER + r"\s*\]\]")
_LETTER = re.compile(r"\[\[\s*([ABC])\s*\]\]")
TIE_DELTA = 0.1


def parse_rating(judgment: str, scale: tuple[float, float] = (1.0, 10.0)) -> float | None:
    for pattern in (_RATING_STRICT, _RATING_LOOSE):
        found = [float(m) for m in pattern.findall(judgment)]
        found = [value for value in found if scale[0] <= value <= scale[1]]
        if found:
            return found[-1]
    return None


def parse_pair(judgment: str, output_format: str = "[[A]]") -> PairVerdict | None:
    if "rating_a" in output_format:
        scores = _TWO_SCORES.findall(judgment)
        if not scores:
            return None
        a, b = (float(x) for x in scores[-1])
        if abs(a - b) <= TIE_DELTA:
            return "tie"
        return "A" if a > b else "B"
    letters = _LETTER.findall(judgment)
    if not letters:
        return None
    return {"A": "A", "B": "B", "C": "tie"}[letters[-1]]  # type: ignore[return-value]
