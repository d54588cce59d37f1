"""Judge prompts from MT-bench's judge_prompts.jsonl: which prompt judges which question
and turn, and what the judge is shown."""

from __future__ import annotations

import pytest

from palestra.core.errors import InvalidRequestError
from palestra.judge.bench import Question, load_questions
from palestra.judge.prompts import choose_prompt, judge_messages, load_judge_prompts
from tests.shared_data import SHARED_DATA, needs_shared_data

pytestmark = needs_shared_data


@pytest.fixture(scope="module")
def prompts():  # type: ignore[no-untyped-def]
    assert SHARED_DATA is not None
    return load_judge_prompts(SHARED_DATA / "judge_prompts.jsonl")


def test_mt_bench_questions_load() -> None:
    assert SHARED_DATA is not None
    questions = load_questions(SHARED_DATA / "mt_bench" / "question.jsonl")
    assert len(questions) == 80 and all(len(q.turns) == 2 for q in questions)
    counts: dict[str, int] = {}
    for q in questions:
        counts[q.category] = counts.get(q.category, 0) + 1
    assert set(counts.values()) == {10} and len(counts) == 8
    assert sum(q.needs_reference for q in questions) == 30
    temperatures = {q.category: q.temperature for q in questions}
    assert temperatures["writing"] == 0.7 and temperatures["math"] == 0.0
    assert temperatures["stem"] == 0.1


@pytest.mark.parametrize(
    ("mode", "category", "turn", "name"),
    [
        ("single", "writing", 1, "single-v1"),
        ("single", "writing", 2, "single-v1-multi-turn"),
        ("single", "math", 1, "single-math-v1"),
        ("single", "coding", 2, "single-math-v1-multi-turn"),
        ("pairwise", "roleplay", 1, "pair-v2"),
        ("pairwise", "roleplay", 2, "pair-v2-multi-turn"),
        ("pairwise", "reasoning", 1, "pair-math-v1"),
        ("pairwise", "reasoning", 2, "pair-math-v1-multi-turn"),
    ],
)
def test_prompt_choice(prompts, mode: str, category: str, turn: int, name: str) -> None:  # type: ignore[no-untyped-def]
    question = Question(1, category, ("q1", "q2"))
    assert choose_prompt(prompts, mode, question, turn).name == name  # type: ignore[arg-type]


def test_messages_show_what_is_judged(prompts) -> None:  # type: ignore[no-untyped-def]
    question = Question(7, "math", ("What is 2+2?", "And 3+3?"))
    reference = ("4", "6")
    single = judge_messages(
        prompts["single-math-v1-multi-turn"], question, 2, {"answer": ("four", "SIX")}, reference
    )
    assert single[0].role == "system" and "reference answer" in single[0].content.lower()
    user = single[1].content
    for text in ("What is 2+2?", "And 3+3?", "four", "SIX", "### Reference answer:\n4"):
        assert text in user
    pair = judge_messages(
        prompts["pair-v2"], question, 1, {"answer_a": ("AAA", "x"), "answer_b": ("BBB", "y")}
    )
    user = pair[-1].content
    assert user.index("AAA") < user.index("BBB") and "And 3+3?" not in user
    with pytest.raises(InvalidRequestError, match="needs a reference answer"):
        judge_messages(prompts["single-math-v1"], question, 1, {"answer": ("four",)})


def test_missing_prompt_is_a_clear_error(prompts) -> None:  # type: ignore[no-untyped-def]
    only_single = {"single-v1": prompts["single-v1"]}
    with pytest.raises(InvalidRequestError, match="no 'single-v1-multi-turn' prompt"):
        choose_prompt(only_single, "single", Question(1, "writing", ("a", "b")), 2)
