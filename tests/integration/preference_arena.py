"""The demonstration arena the preference-training tests share: its store, written by
`python -m palestra.train.demo_votes`, and the pairs `palestra arena preferences` makes of
it, in a folder per test module (each module's `arena` fixture calls `demo_arena`)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.integration.cluster import CLI


def palestra(*args: str, cwd: Path) -> str:
    done = subprocess.run([*CLI, *args], cwd=cwd, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def demo_arena(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with the demonstration arena's store and its preferences."""
    folder = tmp_path_factory.mktemp("votes")
    done = subprocess.run(
        [CLI[0], "-m", "palestra.train.demo_votes", "arena.db"],
        cwd=folder, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    said = palestra("arena", "preferences", "arena.db", "prefs.jsonl", cwd=folder)
    assert "battles read" in said and "records" in said
    return folder
