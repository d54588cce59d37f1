"""Shared fixtures: the bundled model's tokenizer and a small random Llama for fast
backend tests (built once per session from Palestra's own tokenizer trainer). Tests run
with third-party plugins off (`PALESTRA_PLUGINS=none`)."""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any

import pytest

from palestra.models.inspect import bundled_model_path

# Third-party plugins installed on the machine stay out of the tests (built-ins only),
# in this process and in every command the tests start.
os.environ.setdefault("PALESTRA_PLUGINS", "none")


@pytest.fixture(scope="session")
def bundled_tokenizer() -> Any:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(bundled_model_path())


@pytest.fixture(scope="session")
def random_llama_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-layer random Llama with a real BPE tokenizer and a ChatML template."""
    import torch

    from palestra.tinymodel import build
    from palestra.tinymodel.corpus import pretraining_document

    torch.manual_seed(0)
    rng = random.Random(0)
    tokenizer = build.train_tokenizer([pretraining_document(rng) for _ in range(300)], 600)
    model = build.make_model(tokenizer, hidden=64, layers=2, heads=2)
    model.config.max_position_embeddings = 128
    folder = tmp_path_factory.mktemp("models") / "random-llama"
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def postgres_server() -> Any:
    """A PostgreSQL server of this test process (Debian's binaries, a temporary folder)."""
    from tests.postgres import PostgresServer, server_binaries

    if server_binaries() is None:
        pytest.skip("PostgreSQL's server is not installed (make setup installs it)")
    with PostgresServer() as server:
        yield server


@pytest.fixture(params=["sqlite", "postgresql"])
def store_location(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty arena store's location: a SQLite file, or a fresh PostgreSQL database."""
    if request.param == "sqlite":
        return str(tmp_path / "arena.db")
    return str(request.getfixturevalue("postgres_server").database())
