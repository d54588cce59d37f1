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


def copy_subset(source: Path, target: Path, question_ids: tuple[int, ...]) -> None:
    """The lines of a JSONL file (questions, answers) about the given questions, into a
    temporary bench folder."""
    import json

    target.parent.mkdir(parents=True, exist_ok=True)
    lines = [
        line
        for line in source.read_text("utf-8").splitlines()
        if json.loads(line)["question_id"] in question_ids
    ]
    target.write_text("\n".join(lines) + "\n", "utf-8")
