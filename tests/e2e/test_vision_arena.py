"""A vision battle between local vision models in a real browser: `palestra serve` with the
tiny LLaVA (`tests/fakes/vision_model.py`) under two names, an image uploaded in the
anonymous arena, both sides answering it, a vote stored with the image's hash."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.test_webui import (
    Arena,
    open_tab,
    screenshot,
    send,
    served_arena,
    wait_answered,
)
from tests.fakes.vision_model import build_tiny_vision_model, png_bytes
from tests.integration.cluster import wait_for

NAMES = ("llava-left", "llava-right")


@pytest.fixture(scope="module")
def vision_arena(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Arena]:
    folder = build_tiny_vision_model(tmp_path_factory.mktemp("tiny-llava"))
    options = ["--model-path", str(folder), "--model-path", str(folder),
               "--model-names", ",".join(NAMES)]  # fmt: skip
    with served_arena(folder.parent, *options, models=2) as served:
        yield served


def test_an_image_battle_between_local_vision_models(
    page: Any, vision_arena: Arena, tmp_path: Path
) -> None:
    image = tmp_path / "picture.png"
    image.write_bytes(png_bytes())
    open_tab(page, vision_arena, "Battle")
    page.locator("#battle-input input[type=file]").set_input_files(str(image))
    send(page, "battle", "What is the capital of Italy?")
    for side in ("a", "b"):
        page.locator(f"#battle-chatbot-{side}").get_by_text("Rome").wait_for(timeout=30_000)
    wait_for(lambda: len(vision_arena.events("chat")) >= 2, 30, "chat events")
    wait_answered(page, "battle")
    screenshot(page, "arena-vision-battle")
    page.locator("#battle-vote-a").click()
    page.locator("#battle-notice").get_by_text("vote recorded").wait_for()
    vote = vision_arena.events("leftvote")[-1]
    assert sorted(vote["models"]) == sorted(NAMES)
    # FastChat's state format: a user turn with an image is [role, [text, [sha256, ...]]]
    with_images = [m for m in vote["states"][0]["messages"] if isinstance(m[1], list)]
    assert [len(m[1][1]) for m in with_images] == [1]  # the image's hash, never the image
    assert len(with_images[0][1][1][0]) == 64
