"""Judge prompts in MT-bench's format (`judge_prompts.jsonl`: name, type single|pairwise,
system_prompt, prompt_template, category, output_format) and turning one question, its
answers and reference into the judge's messages.

Which prompt judges what follows MT-bench: questions in reference categories (math,
reasoning, coding) use the `*-math-v1` prompts with the reference answer; the second turn
uses the `*-multi-turn` prompts, which show the whole dialogue.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from palestra.core.errors import InvalidRequestError
from palestra.core.jsonl import read_jsonl
from palestra.core.types import Message
from palestra.judge.bench import Question

Mode = Literal["single", "pairwise"]


@dataclass(frozen=True)
class JudgePrompt:
    name: str
    type: Mode
    system_prompt: str
    prompt_template: str
    output_format: str
    category: str = "general"

    @property
    def multi_turn(self) -> bool:
        return "{question_2}" in self.prompt_template

    @property
    def uses_reference(self) -> bool:
        return "{ref_answer_1}" in self.prompt_template


def load_judge_prompts(path: str | Path) -> dict[str, JudgePrompt]:
    file = Path(path)
    if not file.is_file():
        raise InvalidRequestError(
            f"judge prompt file {str(file)!r} does not exist; give --judge-prompts or run "
            "`palestra judge download`"
        )
    prompts: dict[str, JudgePrompt] = {}
    for number, record in read_jsonl(file):
        try:
            prompt = JudgePrompt(
                name=str(record["name"]),
                type=record["type"],
                system_prompt=str(record.get("system_prompt", "")),
                prompt_template=str(record["prompt_template"]),
                output_format=str(record.get("output_format", "")),
                category=str(record.get("category", "general")),
            )
        except KeyError as exc:
            raise InvalidRequestError(f"{file}:{number}: judge prompt without {exc}") from exc
        if prompt.type not in ("single", "pairwise"):
            raise InvalidRequestError(f"{file}:{number}: type must be single or pairwise")
        prompts[prompt.name] = prompt
    return prompts


def prompt_name(mode: Mode, question: Question, turn: int) -> str:
    """MT-bench's choice of prompt for a mode, a question's category and a turn (1-based)."""
    base = "pair" if mode == "pairwise" else "single"
    version = "v2" if mode == "pairwise" else "v1"
    name = f"{base}-math-v1" if question.needs_reference else f"{base}-{version}"
    return name + ("-multi-turn" if turn > 1 else "")


def choose_prompt(
    prompts: dict[str, JudgePrompt], mode: Mode, question: Question, turn: int
) -> JudgePrompt:
    name = prompt_name(mode, question, turn)
    if name not in prompts:
        raise InvalidRequestError(
            f"the judge prompt file has no {name!r} prompt (needed for {mode} judging of "
            f"{question.category or 'uncategorised'} questions, turn {turn}); it has: "
            f"{', '.join(sorted(prompts))}"
        )
    return prompts[name]


def _fields(
    question: Question, turn: int, reference: tuple[str, ...], answers: dict[str, tuple[str, ...]]
) -> dict[str, str]:
    """Template variables: question(_n), answer(_n) / answer_a(_n) / answer_b(_n),
    ref_answer_n."""
    values: dict[str, str] = {"question": question.turns[turn - 1]}
    for index, text in enumerate(question.turns, 1):
        values[f"question_{index}"] = text
    for index, text in enumerate(reference, 1):
        values[f"ref_answer_{index}"] = text
    for key, turns in answers.items():
        values[key] = turns[turn - 1] if turn <= len(turns) else ""
        for index, text in enumerate(turns, 1):
            values[f"{key}_{index}"] = text
    return values


def judge_messages(
    prompt: JudgePrompt,
    question: Question,
    turn: int,
    answers: dict[str, tuple[str, ...]],
    reference: tuple[str, ...] = (),
) -> list[Message]:
    """The judge's conversation. `answers` maps `answer` (single) or `answer_a`/`answer_b`
    (pairwise) to an answer's turns."""
    if prompt.uses_reference and not reference:
        raise InvalidRequestError(
            f"question {question.question_id} ({question.category}) needs a reference answer "
            f"for prompt {prompt.name!r}; none found in the question or reference_answer/"
        )
    values = _fields(question, turn, reference, answers)
    try:
        user = prompt.prompt_template.format(**values)
    except KeyError as exc:
        raise InvalidRequestError(
            f"judge prompt {prompt.name!r} uses {exc}, which question "
            f"{question.question_id} cannot fill (it has {len(question.turns)} turn(s))"
        ) from exc
    messages = [Message("user", user)]
    if prompt.system_prompt:
        messages.insert(0, Message("system", prompt.system_prompt))
    return messages
