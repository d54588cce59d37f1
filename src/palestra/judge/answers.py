"""Generating a model's answers to a question set (`palestra judge answer`).

Each question is a conversation: the first turn is asked, the answer kept, the second turn
asked after it, and so on. Temperatures follow MT-bench's categories unless forced. Answers
are appended to the answer file as each question finishes, so an interrupted run resumes
where it stopped (answered questions are skipped); at the end the file is rewritten sorted
by question id, one line per question, in MT-bench's model_answer format. A turn the model
refuses (its context is too short, say) is written as "$ERROR$ <why>" and answered again
on the next run; an error that would fail every request (no server, a bad key) stops the
run with that error, keeping what was answered.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from palestra.core.errors import InvalidRequestError
from palestra.core.jsonl import append_jsonl
from palestra.core.types import Message
from palestra.judge.bench import Answer, Question, load_answer_file, write_answers
from palestra.judge.client import ChatModel

ERROR_ANSWER = "$ERROR$"


@dataclass
class AnswerReport:
    answered: int = 0
    skipped: int = 0  # already in the answer file
    failed_turns: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    seconds: float = 0.0

    def summary(self, path: Path) -> str:
        return (
            f"{self.answered} questions answered, {self.skipped} already there, "
            f"{self.failed_turns} turns failed; {self.prompt_tokens} prompt + "
            f"{self.completion_tokens} completion tokens in {self.seconds:.1f} s -> {path}"
        )


@dataclass(frozen=True)
class AnswerSettings:
    max_tokens: int = 1024
    concurrency: int = 8
    force_temperature: float | None = None
    system: str | None = None


async def answer_question(
    model: ChatModel, question: Question, settings: AnswerSettings, report: AnswerReport
) -> Answer:
    temperature = (
        settings.force_temperature
        if settings.force_temperature is not None
        else question.temperature
    )
    conversation: list[Message] = [Message("system", settings.system)] if settings.system else []
    replies: list[str] = []
    for turn in question.turns:
        conversation.append(Message("user", turn))
        try:
            completion = await model.complete(
                conversation, temperature=temperature, max_tokens=settings.max_tokens
            )
            reply = completion.text
            report.prompt_tokens += completion.prompt_tokens
            report.completion_tokens += completion.completion_tokens
        except InvalidRequestError as exc:  # this turn cannot be answered (too long, say)
            # is recorded and retried next run; an unreachable server or a bad key stops it.
            report.failed_turns += 1
            reply = f"{ERROR_ANSWER} {exc}"
        replies.append(reply)
        conversation.append(Message("assistant", reply))
    return Answer(
        question_id=question.question_id,
        model_id=model.name,
        turns=tuple(replies),
        answer_id=uuid.uuid4().hex[:22],
        tstamp=time.time(),
    )


def _complete(answer: Answer, question: Question) -> bool:
    return len(answer.turns) >= len(question.turns) and not any(
        t.startswith(ERROR_ANSWER) for t in answer.turns
    )


async def generate_answers(
    model: ChatModel,
    questions: list[Question],
    path: Path,
    settings: AnswerSettings,
    on_done: Callable[[int], None] | None = None,
) -> AnswerReport:
    """Answer every question not yet answered in `path` (failed ones are retried)."""
    started = time.perf_counter()
    report = AnswerReport()
    existing = load_answer_file(path) if path.is_file() else {}
    by_id = {q.question_id: q for q in questions}
    kept = [a for qid, a in existing.items() if qid in by_id and _complete(a, by_id[qid])]
    done = {a.question_id for a in kept}
    todo = [q for q in questions if q.question_id not in done]
    report.skipped = len(questions) - len(todo)
    if on_done and report.skipped:
        on_done(report.skipped)
    limit = asyncio.Semaphore(max(1, settings.concurrency))

    async def one(question: Question) -> Answer:
        async with limit:
            answer = await answer_question(model, question, settings, report)
        append_jsonl(path, answer.to_record())
        report.answered += 1
        if on_done:
            on_done(1)
        return answer

    answers = await asyncio.gather(*(one(q) for q in todo))
    others = [a for qid, a in existing.items() if qid not in by_id]  # other question sets
    write_answers(path, others + kept + list(answers))
    report.seconds = time.perf_counter() - started
    return report
