"""Where the team's shared data lives (MT-bench questions, reference answers, judge
prompts, arena counts): `$PALESTRA_SHARED_DATA`, else `shared/data` next to the checkout.
Tests read it in place and never copy it into the repository."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


def shared_data_dir() -> Path | None:
    candidates = [os.environ.get("PALESTRA_SHARED_DATA", "")]
    root = Path(__file__).resolve().parents[1]
    candidates += [str(parent / "shared" / "data") for parent in root.parents]
    for candidate in candidates:
        if candidate and (Path(candidate) / "mt_bench" / "question.jsonl").is_file():
            return Path(candidate)
    return None


SHARED_DATA = shared_data_dir()
needs_shared_data = pytest.mark.skipif(
    SHARED_DATA is None, reason="shared MT-bench data not found (set PALESTRA_SHARED_DATA)"
)
