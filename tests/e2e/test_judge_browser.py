"""`palestra judge browse` in a real browser: a question, two models' answers and the
judge's verdicts side by side; switching questions updates the page; HTML in a judgment is
shown as text, never run."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.integration.cluster import CLI, free_port, wait_for
from tests.shared_data import SHARED_DATA, copy_subset, needs_shared_data

pytestmark = needs_shared_data
QUESTIONS = (81, 82)
MODELS = ("gpt-4", "vicuna-13b-v1.3")
SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "screenshots" / "judge-browser.png"


@pytest.fixture
def browser_url(tmp_path: Path) -> Iterator[str]:
    assert SHARED_DATA is not None
    bench = tmp_path / "mt_bench"
    copy_subset(SHARED_DATA / "mt_bench" / "question.jsonl", bench / "question.jsonl", QUESTIONS)
    for model in MODELS:
        copy_subset(
            SHARED_DATA / "mt_bench" / "model_answer" / f"{model}.jsonl",
            bench / "model_answer" / f"{model}.jsonl",
            QUESTIONS,
        )
    judgments = bench / "model_judgment"
    judgments.mkdir()
    single = [
        {"question_id": 81, "model": "gpt-4", "judge": ["judge-x", "single-v1"], "turn": 1,
         "user_prompt": "...", "judgment": "Vivid and accurate. Rating: [[9]]", "score": 9},
        {"question_id": 81, "model": "vicuna-13b-v1.3", "judge": ["judge-x", "single-v1"],
         "turn": 1, "user_prompt": "...", "score": 6,
         "judgment": "<script>window.injected = 1</script><b>bold?</b> Rating: [[6]]"},
    ]  # fmt: skip
    pair = [
        {"question_id": 81, "model_1": "gpt-4", "model_2": "vicuna-13b-v1.3", "turn": 1,
         "g1_winner": "gpt-4", "g2_winner": "vicuna-13b-v1.3", "judge": ["judge-x", "pair-v2"],
         "g1_user_prompt": "...", "g1_judgment": "A wins. [[A]]",
         "g2_user_prompt": "...", "g2_judgment": "A wins again. [[A]]"},
    ]  # fmt: skip
    (judgments / "judge-x_single.jsonl").write_text("".join(json.dumps(r) + "\n" for r in single))
    (judgments / "judge-x_pair.jsonl").write_text("".join(json.dumps(r) + "\n" for r in pair))
    port = free_port()
    process = subprocess.Popen(
        [*CLI, "judge", "browse", "--bench", str(bench), "--judge-model", "judge-x",
         "--port", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: httpx.get(url, timeout=2).status_code == 200, 90, "judge browser")
        yield url
    finally:
        process.terminate()
        process.wait(15)


def test_browse_question_answers_and_judgments(page: Any, browser_url: str) -> None:
    page.goto(browser_url)
    question = page.locator("#question")
    question.get_by_text("Question 81 (writing)").wait_for(timeout=30_000)
    assert "travel blog post about a recent trip to Hawaii" in question.inner_text()
    assert "#### gpt-4" not in page.locator("#answer-a").inner_text()  # rendered, not raw
    assert "gpt-4" in page.locator("#answer-a").inner_text()
    assert "vicuna-13b-v1.3" in page.locator("#answer-b").inner_text()
    assert "score 9" in page.locator("#single-a").inner_text()
    single_b = page.locator("#single-b").inner_text()
    assert "<script>window.injected = 1</script><b>bold?</b>" in single_b  # shown as text
    assert page.evaluate("window.injected") is None  # and never run
    pairwise = page.locator("#pairwise").inner_text()
    assert "tie (the verdict flipped with the order)" in pairwise
    assert "Game 2 (vicuna-13b-v1.3 as A): vicuna-13b-v1.3" in pairwise
    if os.environ.get("PALESTRA_SCREENSHOTS"):  # `make screenshots` refreshes the docs
        SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOT))

    page.get_by_label("Question").click()
    page.get_by_role("option", name="82: [writing]").click()
    question.get_by_text("Question 82 (writing)").wait_for(timeout=30_000)
    assert "Quarterly Financial Report" in question.inner_text()
    assert "No single-answer judgment of gpt-4" in page.locator("#single-a").inner_text()
    assert "No pairwise judgment" in page.locator("#pairwise").inner_text()
