"""The MT-bench pipeline end to end, for real: answers from the bundled model served by
Palestra (through its OpenAI-compatible API), judgments from a scripted OpenAI-compatible
judge on loopback (well-formed, malformed-then-fixed and order-dependent verdicts), then the
result tables, all through the `palestra judge` CLI."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from openai import OpenAI

from tests.fakes.judge_server import build_judge_app
from tests.fakes.server import serve_in_thread
from tests.integration.cluster import CLI, Process
from tests.shared_data import SHARED_DATA, copy_subset, needs_shared_data

pytestmark = needs_shared_data
QUESTIONS = (81, 101, 111)  # writing; reasoning and math (graded against references)


@pytest.fixture
def bench(tmp_path: Path) -> Path:
    """Three MT-bench questions, their references, GPT-3.5's released answers and the
    judge prompts, read from the shared data into a temporary bench folder."""
    assert SHARED_DATA is not None
    bench = tmp_path / "data" / "mt_bench"
    mt = SHARED_DATA / "mt_bench"
    copy_subset(mt / "question.jsonl", bench / "question.jsonl", QUESTIONS)
    copy_subset(
        mt / "reference_answer/gpt-4.jsonl", bench / "reference_answer/gpt-4.jsonl", QUESTIONS
    )
    copy_subset(
        mt / "model_answer/gpt-3.5-turbo.jsonl",
        bench / "model_answer/gpt-3.5-turbo.jsonl",
        QUESTIONS,
    )
    (tmp_path / "data" / "judge_prompts.jsonl").write_bytes(
        (SHARED_DATA / "judge_prompts.jsonl").read_bytes()
    )
    return bench


@pytest.fixture
def judge_url() -> Iterator[str]:
    with serve_in_thread(build_judge_app()) as url:
        yield url


def palestra(*args: str) -> str:
    result = subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    return result.stdout


def records(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text("utf-8").splitlines() if line]


def judge_requests(judge_url: str) -> int:
    return int(httpx.get(judge_url + "/stats").json()["requests"])


def expected_score(answer: str) -> int:
    return 8 if len(answer) > 200 else 3


def test_answer_grade_show(stack: dict[str, Process], bench: Path, judge_url: str) -> None:
    api = stack["api"].url + "/v1"
    answer_args = ["judge", "answer", "--model", "palestra-tiny", "--api-base", api]
    answer_args += ["--bench", str(bench), "--max-tokens", "48", "--concurrency", "3"]
    out = palestra(*answer_args)
    assert "3 questions answered, 0 already there, 0 turns failed" in out
    answer_file = bench / "model_answer" / "palestra-tiny.jsonl"
    answers = {r["question_id"]: r for r in records(answer_file)}
    assert sorted(answers) == list(QUESTIONS)
    for record in answers.values():
        assert record["model_id"] == "palestra-tiny" and record["answer_id"]
        turns = record["choices"][0]["turns"]
        assert len(turns) == 2 and all(t.strip() for t in turns)
    # Math is answered greedily (MT-bench's category temperature 0): the same as asking
    # the API directly at temperature 0.
    question = json.loads((bench / "question.jsonl").read_text().splitlines()[2])
    direct = OpenAI(base_url=api, api_key="none").chat.completions.create(
        model="palestra-tiny",
        messages=[{"role": "user", "content": question["turns"][0]}],
        temperature=0,
        max_tokens=48,
    )
    assert answers[111]["choices"][0]["turns"][0] == direct.choices[0].message.content.strip()

    before = answer_file.read_text()
    assert "0 questions answered, 3 already there" in palestra(*answer_args)  # resumes
    assert answer_file.read_text() == before

    # Single grading: 3 questions x 2 turns x 2 models; the 8 prompts with a reference
    # answer are first answered malformed, so each is asked twice.
    judge = ["--judge-model", "scripted-judge", "--judge-api-base", judge_url + "/v1"]
    grade = ["judge", "grade", "--bench", str(bench), *judge]
    out = palestra(*grade, "--mode", "single", "--models", "palestra-tiny,gpt-3.5-turbo")
    assert "12 judged" in out and "8 retries" in out and "0 unparsable" in out
    assert judge_requests(judge_url) == 20
    single_file = bench / "model_judgment" / "scripted-judge_single.jsonl"
    judged = records(single_file)
    all_answers = {
        "palestra-tiny": answers,
        "gpt-3.5-turbo": {r["question_id"]: r for r in records(
            bench / "model_answer" / "gpt-3.5-turbo.jsonl")},
    }  # fmt: skip
    for record in judged:
        text = all_answers[record["model"]][record["question_id"]]["choices"][0]["turns"]
        assert record["score"] == expected_score(text[record["turn"] - 1])
        assert record["judge"][0] == "scripted-judge"
        category_prompt = "single-math-v1" if record["question_id"] != 81 else "single-v1"
        suffix = "-multi-turn" if record["turn"] == 2 else ""
        assert record["judge"][1] == category_prompt + suffix

    # Nothing is judged twice: a re-run skips every match; with the judgment file gone,
    # the cache replays every reply (retries included) without asking the judge.
    assert "0 judged, 12 already there" in palestra(*grade, "--mode", "single")
    single_file.unlink()
    out = palestra(*grade, "--mode", "single", "--models", "palestra-tiny,gpt-3.5-turbo")
    assert "12 judged" in out and "0 judge calls (20 cached" in out
    assert judge_requests(judge_url) == 20
    assert sorted((r["question_id"], r["model"], r["turn"], r["score"]) for r in judged) == sorted(
        (r["question_id"], r["model"], r["turn"], r["score"]) for r in records(single_file)
    )

    shown = json.loads(palestra("judge", "show", "--bench", str(bench), "--judge-model",
                                "scripted-judge", "--format", "json"))  # fmt: skip
    for row in shown:
        mine = [r["score"] for r in judged if r["model"] == row["model"]]
        assert row["overall"] == pytest.approx(sum(mine) / len(mine))
        assert row["judged"] == 6 and row["unparsable"] == 0
        turn_1 = [r["score"] for r in judged if r["model"] == row["model"] and r["turn"] == 1]
        assert row["turns"]["1"] == pytest.approx(sum(turn_1) / 3)
        assert set(row["categories"]) == {"writing", "reasoning", "math"}
    assert [row["overall"] for row in shown] == sorted((r["overall"] for r in shown), reverse=True)

    # Pairwise against the baseline, both orders: turn 1 the longer answer wins either way;
    # turn 2 the judge always says A, so the verdict flips and counts as a tie.
    out = palestra(*grade, "--mode", "pairwise-baseline", "--models", "palestra-tiny")
    assert "6 judged" in out and "3 inconsistent" in out
    pairs = records(bench / "model_judgment" / "scripted-judge_pair.jsonl")
    wins = losses = 0
    for record in pairs:
        assert (record["model_1"], record["model_2"]) == ("palestra-tiny", "gpt-3.5-turbo")
        if record["turn"] == 2:
            assert (record["g1_winner"], record["g2_winner"]) == ("palestra-tiny", "gpt-3.5-turbo")
            continue
        tiny = answers[record["question_id"]]["choices"][0]["turns"][0]
        gpt = all_answers["gpt-3.5-turbo"][record["question_id"]]["choices"][0]["turns"][0]
        longer = "palestra-tiny" if len(tiny) > len(gpt) else "gpt-3.5-turbo"
        assert record["g1_winner"] == record["g2_winner"] == longer
        wins += longer == "palestra-tiny"
        losses += longer != "palestra-tiny"

    show_pairs = ["judge", "show", "--bench", str(bench), "--judge-model", "scripted-judge"]
    shown = json.loads(palestra(*show_pairs, "--mode", "pairwise-baseline", "--format", "json"))
    (row,) = shown["pairwise"]
    assert (row["model"], row["wins"], row["losses"], row["ties"]) == (
        "palestra-tiny", wins, losses, 3
    )  # fmt: skip
    assert row["inconsistent"] == 3
    assert row["adjusted_win_rate"] == pytest.approx((wins + 1.5) / 6)
    ratings = {r["model"]: r for r in shown["bradley_terry"]}
    assert set(ratings) == {"palestra-tiny", "gpt-3.5-turbo"}
    assert ratings["gpt-3.5-turbo"]["rating"] == pytest.approx(1000.0)  # the anchor
    for r in ratings.values():
        assert r["lower"] <= r["rating"] <= r["upper"]
    table = palestra(*show_pairs, "--mode", "pairwise-baseline")
    assert "| palestra-tiny |" in table and "Bradley-Terry" in table


def test_palestra_serves_as_the_judge(stack: dict[str, Process], bench: Path) -> None:
    """The bundled model behind Palestra's API as the judge: every match gets a record, a
    score from 1 to 10 or -1 (no verdict, or a prompt longer than the tiny model's
    512-token context, recorded with the reason), and the run goes on."""
    api = stack["api"].url + "/v1"
    answers = ["judge", "answer", "--model", "palestra-tiny", "--api-base", api]
    palestra(*answers, "--bench", str(bench), "--max-tokens", "16")
    judge = ["--judge-model", "palestra-tiny", "--judge-api-base", api]
    out = palestra(
        "judge", "grade", "--bench", str(bench), *judge, "--mode", "single",
        "--models", "palestra-tiny,gpt-3.5-turbo", "--max-attempts", "2", "--max-tokens", "16",
    )  # fmt: skip
    assert "12 judged" in out
    judged = records(bench / "model_judgment" / "palestra-tiny_single.jsonl")
    assert len(judged) == 12
    assert all(r["score"] == -1 or 1 <= r["score"] <= 10 for r in judged)
    refused = [r for r in judged if r["judgment"].startswith("$ERROR$")]
    assert refused and all("context" in r["judgment"] for r in refused)
    assert any(r["model"] == "gpt-3.5-turbo" for r in refused)  # its long answers never fit
    shown = palestra("judge", "show", "--bench", str(bench), "--judge-model", "palestra-tiny")
    assert "| gpt-3.5-turbo |" in shown and "| palestra-tiny |" in shown
