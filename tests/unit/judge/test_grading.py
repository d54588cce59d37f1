"""Grading and answering with scripted models: retries, unparsable verdicts, the order
swap, resuming, and the answer loop."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from palestra.backends.scripted import ScriptedBackend
from palestra.core.errors import InvalidRequestError
from palestra.core.types import GenerationRequest
from palestra.judge.answers import AnswerSettings, generate_answers
from palestra.judge.bench import Answer, Question, load_answer_file
from palestra.judge.cache import JudgmentCache
from palestra.judge.client import ChatModel
from palestra.judge.grading import (
    Grader,
    GradeReport,
    GradeSettings,
    plan_matches,
    run_grading,
)
from palestra.judge.prompts import JudgePrompt

SINGLE = JudgePrompt("single-v1", "single", "", "Q: {question}\nA: {answer}", "[[rating]]")
SINGLE_2 = JudgePrompt(
    "single-v1-multi-turn", "single", "", "{question_1} {answer_1} {question_2} {answer_2}", ""
)
PAIR = JudgePrompt("pair-v2", "pairwise", "", "{question}\nA: {answer_a}\nB: {answer_b}", "[[A]]")
PROMPTS = {p.name: p for p in (SINGLE, SINGLE_2, PAIR)}
QUESTIONS = [Question(1, "writing", ("Say hi.",)), Question(2, "writing", ("Say bye.",))]
ANSWERS = {
    "alpha": {1: Answer(1, "alpha", ("hi there, friend",)), 2: Answer(2, "alpha", ("bye",))},
    "beta": {1: Answer(1, "beta", ("hi",)), 2: Answer(2, "beta", ("goodbye, see you",))},
}


def _judge(reply) -> tuple[ChatModel, ScriptedBackend]:  # type: ignore[no-untyped-def]
    backend = ScriptedBackend([reply], model_name="judge")
    return ChatModel(backend), backend


def _run(judge: ChatModel, tmp_path: Path, settings: GradeSettings, models: list[str]):  # type: ignore[no-untyped-def]
    report = GradeReport()
    matches = plan_matches(settings, QUESTIONS, ANSWERS, models, PROMPTS, {}, report)
    cache = JudgmentCache(tmp_path / "cache.sqlite")
    path = tmp_path / "judgments.jsonl"
    try:
        asyncio.run(run_grading(Grader(judge, cache, settings, report), matches, path))
    finally:
        cache.close()
    return report, [json.loads(line) for line in path.read_text().splitlines()]


def test_unparsable_after_every_attempt_is_recorded_and_retried_next_run(tmp_path: Path) -> None:
    judge, backend = _judge("I refuse to give a number.")
    settings = GradeSettings("single", max_attempts=3)
    report, records = _run(judge, tmp_path, settings, ["alpha"])
    assert [r["score"] for r in records] == [-1, -1]
    assert report.unparsable == 2 and report.calls == 6 and report.retries == 4
    assert len(backend.requests) == 6
    # Next run: failed matches are judged again; the cache replays the three attempts,
    # a larger attempt budget asks the judge once more per match.
    report, records = _run(judge, tmp_path, GradeSettings("single", max_attempts=4), ["alpha"])
    assert report.judged == 2 and report.cache_hits == 6 and report.calls == 2


def test_pairwise_swaps_order_and_maps_letters_to_models(tmp_path: Path) -> None:
    def longer(request: GenerationRequest) -> str:
        text = request.conversation.messages[-1].content
        a = text.split("A: ")[1].split("\nB: ")[0]
        b = text.split("\nB: ")[1]
        return "[[A]]" if len(a) > len(b) else "[[B]]"

    judge, backend = _judge(longer)
    report, records = _run(judge, tmp_path, GradeSettings("pairwise-all"), ["alpha", "beta"])
    assert report.inconsistent == 0 and len(backend.requests) == 4
    winners = {r["question_id"]: (r["g1_winner"], r["g2_winner"]) for r in records}
    assert winners == {1: ("alpha", "alpha"), 2: ("beta", "beta")}
    g1, g2 = records[0]["g1_user_prompt"], records[0]["g2_user_prompt"]
    assert g1.index("A: ") < g1.index(ANSWERS["alpha"][records[0]["question_id"]].turns[0])
    assert g1 != g2  # the second game shows the answers the other way round


def test_position_bias_is_inconsistent(tmp_path: Path) -> None:
    judge, _ = _judge("[[A]]")
    report, records = _run(
        judge, tmp_path, GradeSettings("pairwise-baseline", baseline="beta"), ["alpha"]
    )
    assert report.inconsistent == 2
    assert {(r["g1_winner"], r["g2_winner"]) for r in records} == {("alpha", "beta")}


def test_missing_answers_and_models(tmp_path: Path) -> None:
    answers = {"alpha": ANSWERS["alpha"], "beta": {1: ANSWERS["beta"][1]}}
    report = GradeReport()
    matches = plan_matches(
        GradeSettings("pairwise-all"), QUESTIONS, answers, ["alpha", "beta"], PROMPTS, {}, report
    )
    assert len(matches) == 1 and report.missing_answers == 1
    with pytest.raises(InvalidRequestError, match="no answers for gamma"):
        plan_matches(GradeSettings(), QUESTIONS, ANSWERS, ["gamma"], PROMPTS, {}, GradeReport())
    with pytest.raises(InvalidRequestError, match="needs --baseline"):
        plan_matches(
            GradeSettings("pairwise-baseline"), QUESTIONS, ANSWERS, ["alpha"], PROMPTS, {}, report
        )


def test_answers_follow_the_conversation_and_resume(tmp_path: Path) -> None:
    def echo(request: GenerationRequest) -> str:
        users = [m.content for m in request.conversation.messages if m.role == "user"]
        return f"reply to {users[-1]} after {len(request.conversation.messages)} messages"

    backend = ScriptedBackend([echo], model_name="echo")
    model = ChatModel(backend)
    questions = [
        Question(1, "math", ("one?", "two?")),
        Question(2, "writing", ("three?", "four?")),
        Question(3, "stem", ("five?",)),
    ]
    path = tmp_path / "model_answer" / "echo.jsonl"
    # A previous run answered question 2 completely and question 1 with an error.
    path.parent.mkdir(parents=True)
    old = [
        Answer(2, "echo", ("old three", "old four"), "x"),
        Answer(1, "echo", ("$ERROR$ boom", ""), "y"),
    ]
    path.write_text("".join(json.dumps(a.to_record()) + "\n" for a in old))
    report = asyncio.run(generate_answers(model, questions, path, AnswerSettings(max_tokens=32)))
    assert (report.answered, report.skipped, report.failed_turns) == (2, 1, 0)
    answers = load_answer_file(path)
    assert list(answers) == [1, 2, 3]  # rewritten sorted, one line per question
    assert answers[2].turns == ("old three", "old four")
    assert answers[1].turns == ("reply to one? after 1 messages", "reply to two? after 3 messages")
    temperatures = sorted(r.sampling.temperature for r in backend.requests)
    assert temperatures == [0.0, 0.0, 0.1]  # math twice, stem once (MT-bench's categories)


def test_show_pairwise_all_keeps_only_the_chosen_models(tmp_path: Path) -> None:
    import subprocess

    from tests.integration.cluster import CLI

    def pair(m1: str, m2: str, winner: str) -> dict:
        return {"question_id": 1, "model_1": m1, "model_2": m2, "g1_winner": winner,
                "g2_winner": winner, "judge": ["j", "pair-v2"], "turn": 1}  # fmt: skip

    rows = [pair("a", "b", "a"), pair("a", "gpt-3.5-turbo", "gpt-3.5-turbo"), pair("b", "c", "c")]
    judgments = tmp_path / "model_judgment" / "j_pair.jsonl"
    judgments.parent.mkdir()
    judgments.write_text("".join(json.dumps(r) + "\n" for r in rows))
    shown = subprocess.run(
        [*CLI, "judge", "show", "--bench", str(tmp_path), "--judge-model", "j",
         "--mode", "pairwise-all", "--models", "a,b", "--format", "json", "--rounds", "5"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert shown.returncode == 0, shown.stderr
    table = {r["model"]: (r["wins"], r["losses"]) for r in json.loads(shown.stdout)["pairwise"]}
    assert table == {"a": (1, 0), "b": (0, 1)}  # the baseline's match is not a's
