"""A benchmark on disk in MT-bench's layout, and its records.

    BENCH/question.jsonl                  {question_id, category, turns: [q1, q2], reference?}
    BENCH/reference_answer/<judge>.jsonl  reference answers (same shape as model answers)
    BENCH/model_answer/<model>.jsonl      {question_id, answer_id, model_id,
                                           choices: [{index, turns: [a1, a2]}], tstamp}
    BENCH/model_judgment/<judge>_single.jsonl, <judge>_pair.jsonl
    BENCH/../judge_prompts.jsonl          judge prompts

Palestra reads a bench folder (the questions, references and released answers) and writes
into an output folder (default: the same), so a read-only copy of MT-bench can be used as
it is. Any custom bench in the same format works. A malformed line is an error naming its
file and line, never silently skipped.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from palestra.core.errors import InvalidRequestError
from palestra.core.jsonl import read_jsonl

# Categories that MT-bench grades against a reference answer.
REFERENCE_CATEGORIES: tuple[str, ...] = ("math", "reasoning", "coding", "arena-hard-200")
# MT-bench's per-category sampling temperatures for answers.
CATEGORY_TEMPERATURE: dict[str, float] = {
    "writing": 0.7,
    "roleplay": 0.7,
    "extraction": 0.0,
    "math": 0.0,
    "coding": 0.0,
    "reasoning": 0.0,
    "stem": 0.1,
    "humanities": 0.1,
    "arena-hard-200": 0.0,
}
DEFAULT_TEMPERATURE = 0.7


@dataclass(frozen=True)
class Question:
    question_id: int | str
    category: str
    turns: tuple[str, ...]
    reference: tuple[str, ...] = ()  # inline reference answers, when the bench has them

    @property
    def temperature(self) -> float:
        return CATEGORY_TEMPERATURE.get(self.category, DEFAULT_TEMPERATURE)

    @property
    def needs_reference(self) -> bool:
        return self.category in REFERENCE_CATEGORIES


@dataclass(frozen=True)
class Answer:
    question_id: int | str
    model_id: str
    turns: tuple[str, ...]  # the first choice's turns
    answer_id: str = ""
    tstamp: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict, compare=False)

    def to_record(self) -> dict[str, Any]:
        return {
            "question_id": self.question_id,
            "answer_id": self.answer_id,
            "model_id": self.model_id,
            "choices": [{"index": 0, "turns": list(self.turns)}],
            "tstamp": self.tstamp,
            **self.extra,
        }


def load_questions(
    path: str | Path, *, begin: int | None = None, end: int | None = None
) -> list[Question]:
    """Questions from a question.jsonl, optionally a slice [begin, end) by position."""
    file = Path(path)
    if not file.is_file():
        raise InvalidRequestError(
            f"question file {str(file)!r} does not exist; `palestra judge download` fetches "
            "MT-bench, or give --bench pointing at a folder with question.jsonl"
        )
    questions = []
    for number, record in read_jsonl(file):
        turns = record.get("turns")
        if "question_id" not in record or not isinstance(turns, list) or not turns:
            raise InvalidRequestError(
                f"{file}:{number}: a question needs question_id and a non-empty turns list"
            )
        reference = record.get("reference") or []
        questions.append(
            Question(
                question_id=record["question_id"],
                category=str(record.get("category", "")),
                turns=tuple(str(t) for t in turns),
                reference=tuple(str(r) for r in reference),
            )
        )
    ids = [q.question_id for q in questions]
    if len(set(ids)) != len(ids):
        raise InvalidRequestError(f"{file}: duplicate question_id values")
    return questions[begin:end]


def answer_from_record(record: dict[str, Any], where: str) -> Answer:
    try:
        turns = record["choices"][0]["turns"]
        known = {"question_id", "answer_id", "model_id", "choices", "tstamp"}
        return Answer(
            question_id=record["question_id"],
            model_id=str(record["model_id"]),
            turns=tuple(str(t) for t in turns),
            answer_id=str(record.get("answer_id", "")),
            tstamp=float(record.get("tstamp", 0.0)),
            extra={k: v for k, v in record.items() if k not in known},
        )
    except (KeyError, IndexError, TypeError) as exc:
        raise InvalidRequestError(
            f"{where}: an answer needs question_id, model_id and choices[0].turns"
        ) from exc


def load_answer_file(path: Path) -> dict[int | str, Answer]:
    """One model's answers by question id (a later line for the same question wins)."""
    answers: dict[int | str, Answer] = {}
    for number, record in read_jsonl(path):
        answer = answer_from_record(record, f"{path}:{number}")
        answers[answer.question_id] = answer
    return answers


def load_answers(*folders: Path) -> dict[str, dict[int | str, Answer]]:
    """Every model's answers found in the folders' model_answer/ (later folders win), keyed
    by the file name, as MT-bench names models."""
    models: dict[str, dict[int | str, Answer]] = {}
    for folder in folders:
        directory = folder / "model_answer"
        if directory.is_dir():
            for file in sorted(directory.glob("*.jsonl")):
                models[file.stem] = load_answer_file(file)
    return models


def load_references(bench: Path, judge: str = "gpt-4") -> dict[int | str, Answer]:
    file = bench / "reference_answer" / f"{judge}.jsonl"
    return load_answer_file(file) if file.is_file() else {}


def write_answers(path: Path, answers: list[Answer]) -> None:
    """Rewrite an answer file sorted by question id, one line per question."""
    path.parent.mkdir(parents=True, exist_ok=True)
    unique = {a.question_id: a for a in answers}
    ordered = sorted(unique.values(), key=lambda a: (str(type(a.question_id)), a.question_id))
    temporary = path.with_suffix(".jsonl.tmp")
    with temporary.open("w", encoding="utf-8") as handle:
        for answer in ordered:
            handle.write(json.dumps(answer.to_record(), ensure_ascii=False) + "\n")
    temporary.replace(path)
