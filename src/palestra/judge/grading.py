"""Judging answers (`palestra judge grade`): single-answer grading, pairwise against a
baseline, and pairwise among all models, in MT-bench's judgment file formats.

Pairwise matches are judged in both orders (g1: model_1 shown as A; g2: model_2 shown as
A); a verdict that flips with the order is inconsistent and counts as a tie in results.
A reward model (`RewardJudge`) judges pairs without a prompt: the higher reward wins.
The judge runs at temperature 0; an unparsable reply is asked again up to `max_attempts`
times, then recorded as score -1 / winner "error" (and re-judged on the next run); so is a
prompt the judge refuses (longer than its context, say), with the reason as the judgment.
Errors that would fail every call (no server, a bad key) stop the run instead. Every
reply goes through the `JudgmentCache`; matches already in the judgment file are skipped.
Token use and (when prices are given) cost are counted for the calls actually made.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from palestra.core.errors import InvalidRequestError
from palestra.core.jsonl import append_jsonl, read_jsonl
from palestra.core.types import Message
from palestra.judge.bench import Answer, Question
from palestra.judge.cache import JudgmentCache, cache_key
from palestra.judge.client import ChatModel, Completion
from palestra.judge.prompts import JudgePrompt, choose_prompt, judge_messages
from palestra.judge.prompts import Mode as PromptMode
from palestra.judge.reward import RewardJudge, conversation_at
from palestra.judge.verdicts import parse_pair, parse_rating

GradeMode = Literal["single", "pairwise-baseline", "pairwise-all"]
GRADE_MODES: tuple[str, ...] = ("single", "pairwise-baseline", "pairwise-all")
JUDGE_ERROR = "$ERROR$"
# what a match judged by a reward model carries in place of a judge prompt
REWARD_PROMPT = JudgePrompt("reward-model", "pairwise", "", "", "", "reward")


@dataclass(frozen=True)
class GradeSettings:
    mode: GradeMode = "single"
    baseline: str | None = None
    max_attempts: int = 3
    max_tokens: int = 2048
    concurrency: int = 8
    price_input: float = 0.0  # USD per million prompt tokens
    price_output: float = 0.0  # USD per million completion tokens


@dataclass
class GradeReport:
    judged: int = 0
    skipped: int = 0  # already in the judgment file
    missing_answers: int = 0
    calls: int = 0  # requests actually sent to the judge
    cache_hits: int = 0
    retries: int = 0
    unparsable: int = 0  # matches still without a verdict after every attempt
    inconsistent: int = 0  # pairwise verdicts that flipped with the order
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: float = 0.0
    seconds: float = 0.0

    def summary(self, path: Path) -> str:
        return (
            f"{self.judged} judged, {self.skipped} already there, {self.missing_answers} "
            f"skipped for missing answers; {self.calls} judge calls ({self.cache_hits} cached, "
            f"{self.retries} retries), {self.unparsable} unparsable, {self.inconsistent} "
            f"inconsistent; {self.prompt_tokens} prompt + {self.completion_tokens} completion "
            f"tokens, ${self.cost:.4f}, {self.seconds:.1f} s -> {path}"
        )


@dataclass(frozen=True)
class Match:
    question: Question
    turn: int
    models: tuple[str, ...]  # one (single) or two (pairwise: model_1, model_2)
    prompt: JudgePrompt
    answers: tuple[tuple[str, ...], ...]
    reference: tuple[str, ...] = ()

    @property
    def key(self) -> tuple[str, ...]:
        return (str(self.question.question_id), *self.models, str(self.turn))


def judgment_path(out: Path, judge: str, mode: GradeMode) -> Path:
    kind = "single" if mode == "single" else "pair"
    return out / "model_judgment" / f"{judge.replace('/', '_')}_{kind}.jsonl"


def record_key(record: dict[str, Any]) -> tuple[str, ...]:
    if "model" in record:
        return (str(record["question_id"]), record["model"], str(record["turn"]))
    return (
        str(record["question_id"]),
        record["model_1"],
        record["model_2"],
        str(record["turn"]),
    )


def model_pairs(mode: GradeMode, models: list[str], baseline: str | None) -> list[tuple[str, ...]]:
    if mode == "single":
        return [(m,) for m in models]
    if mode == "pairwise-baseline":
        if not baseline:
            raise InvalidRequestError("pairwise-baseline needs --baseline MODEL", param="baseline")
        return [(m, baseline) for m in models if m != baseline]
    if len(models) < 2:
        raise InvalidRequestError("pairwise-all needs at least two models", param="models")
    return list(itertools.combinations(models, 2))


def plan_matches(
    settings: GradeSettings,
    questions: list[Question],
    answers: dict[str, dict[int | str, Answer]],
    models: list[str],
    prompts: dict[str, JudgePrompt] | None,
    references: dict[int | str, Answer],
    report: GradeReport,
) -> list[Match]:
    """Every (question, turn, model or pair) to judge; pairs missing an answer are counted.
    Without `prompts` (a reward model judges), matches carry `REWARD_PROMPT`."""
    needed = set(models) | ({settings.baseline} if settings.baseline else set())
    unknown = sorted(m for m in needed if m not in answers)
    if unknown:
        raise InvalidRequestError(
            f"no answers for {', '.join(unknown)} in model_answer/; answered: "
            f"{', '.join(sorted(answers)) or 'none'} (run `palestra judge answer` first)"
        )
    kind: PromptMode = "single" if settings.mode == "single" else "pairwise"
    matches = []
    for question in questions:
        reference: tuple[str, ...] = ()
        if question.needs_reference:
            found = references.get(question.question_id)
            reference = found.turns if found else question.reference
        for turn in range(1, len(question.turns) + 1):
            prompt = (
                REWARD_PROMPT if prompts is None else choose_prompt(prompts, kind, question, turn)
            )
            for pair in model_pairs(settings.mode, models, settings.baseline):
                got = [answers[m].get(question.question_id) for m in pair]
                if any(a is None for a in got):
                    report.missing_answers += 1
                    continue
                turns = tuple(a.turns for a in got if a is not None)
                matches.append(Match(question, turn, pair, prompt, turns, reference))
    return matches


class Grader:
    """Runs matches against one judge, through the cache, with retries."""

    def __init__(
        self,
        judge: ChatModel | RewardJudge,
        cache: JudgmentCache,
        settings: GradeSettings,
        report: GradeReport,
    ):
        self.judge = judge
        self.cache = cache
        self.settings = settings
        self.report = report
        self.limit = asyncio.Semaphore(max(1, settings.concurrency))

    async def _call(self, messages: list[Message], attempt: int) -> Completion:
        if isinstance(self.judge, RewardJudge):
            raise InvalidRequestError(
                "a reward model judges pairs only: use --mode pairwise-baseline or pairwise-all"
            )
        key = cache_key(self.judge.name, messages, 0.0, self.settings.max_tokens, attempt)
        cached = self.cache.get(key)
        if cached is not None:
            self.report.cache_hits += 1
            return cached
        async with self.limit:
            completion = await self.judge.complete(
                messages, temperature=0.0, max_tokens=self.settings.max_tokens
            )
        self.report.calls += 1
        self.report.prompt_tokens += completion.prompt_tokens
        self.report.completion_tokens += completion.completion_tokens
        self.report.cost += (
            completion.prompt_tokens * self.settings.price_input
            + completion.completion_tokens * self.settings.price_output
        ) / 1e6
        self.cache.put(key, self.judge.name, completion)
        return completion

    async def ask(self, messages: list[Message], parse: Callable[[str], Any]) -> tuple[str, Any]:
        """(the last judgment text, its verdict or None after every attempt)."""
        text = ""
        for attempt in range(max(1, self.settings.max_attempts)):
            if attempt:
                self.report.retries += 1
            try:
                text = (await self._call(messages, attempt)).text
            except InvalidRequestError as exc:  # this prompt cannot be judged (too long...)
                self.report.unparsable += 1
                return f"{JUDGE_ERROR} {exc}", None
            verdict = parse(text)
            if verdict is not None:
                return text, verdict
        self.report.unparsable += 1
        return text, None

    def _judge_field(self, match: Match) -> list[str]:
        return [self.judge.name, match.prompt.name]

    async def single(self, match: Match) -> dict[str, Any]:
        messages = judge_messages(
            match.prompt, match.question, match.turn, {"answer": match.answers[0]}, match.reference
        )
        judgment, score = await self.ask(messages, parse_rating)
        return {
            "question_id": match.question.question_id,
            "model": match.models[0],
            "judge": self._judge_field(match),
            "user_prompt": messages[-1].content,
            "judgment": judgment,
            "score": -1 if score is None else score,
            "turn": match.turn,
            "tstamp": time.time(),
        }

    async def pair(self, match: Match) -> dict[str, Any]:
        if isinstance(self.judge, RewardJudge):
            return await self._pair_by_reward(match, self.judge)
        model_1, model_2 = match.models
        orders = ((0, 1), (1, 0))  # g1: model_1 is A; g2: model_2 is A
        conversations = [
            judge_messages(
                match.prompt,
                match.question,
                match.turn,
                {"answer_a": match.answers[a], "answer_b": match.answers[b]},
                match.reference,
            )
            for a, b in orders
        ]

        def parse(text: str) -> Any:
            return parse_pair(text, match.prompt.output_format)

        (g1_text, g1), (g2_text, g2) = await asyncio.gather(
            *(self.ask(messages, parse) for messages in conversations)
        )
        names = {0: {"A": model_1, "B": model_2}, 1: {"A": model_2, "B": model_1}}
        winners = [
            "error" if verdict is None else ("tie" if verdict == "tie" else names[i][verdict])
            for i, verdict in enumerate((g1, g2))
        ]
        if "error" not in winners and winners[0] != winners[1]:
            self.report.inconsistent += 1
        return {
            "question_id": match.question.question_id,
            "model_1": model_1,
            "model_2": model_2,
            "g1_winner": winners[0],
            "g2_winner": winners[1],
            "judge": self._judge_field(match),
            "g1_user_prompt": conversations[0][-1].content,
            "g1_judgment": g1_text,
            "g2_user_prompt": conversations[1][-1].content,
            "g2_judgment": g2_text,
            "turn": match.turn,
            "tstamp": time.time(),
        }

    async def _pair_by_reward(self, match: Match, judge: RewardJudge) -> dict[str, Any]:
        conversations = [
            conversation_at(match.question.turns, answers, match.turn) for answers in match.answers
        ]
        async with self.limit:
            reward_1, reward_2 = await judge.judge_pair(conversations)
        self.report.calls += 1
        winner = "tie" if reward_1 == reward_2 else match.models[0 if reward_1 > reward_2 else 1]
        judgment = f"reward {match.models[0]}: {reward_1:.4f}, {match.models[1]}: {reward_2:.4f}"
        return {
            "question_id": match.question.question_id,
            "model_1": match.models[0],
            "model_2": match.models[1],
            "g1_winner": winner,
            "g2_winner": winner,  # the same scores in either order
            "judge": self._judge_field(match),
            "g1_user_prompt": "",
            "g1_judgment": judgment,
            "g2_user_prompt": "",
            "g2_judgment": judgment,
            "turn": match.turn,
            "tstamp": time.time(),
        }


def finished_keys(path: Path) -> set[tuple[str, ...]]:
    """Matches already judged in a judgment file (error records are judged again)."""
    if not path.is_file():
        return set()
    done = set()
    for _, record in read_jsonl(path):
        failed = record.get("score") == -1 or "error" in (
            record.get("g1_winner"),
            record.get("g2_winner"),
        )
        key = record_key(record)
        reversed_key = (key[0], key[2], key[1], key[3]) if len(key) == 4 else key
        if failed:
            done.discard(key)
            done.discard(reversed_key)
        else:
            done.update({key, reversed_key})
    return done


async def run_grading(
    grader: Grader,
    matches: list[Match],
    path: Path,
    on_done: Callable[[int], None] | None = None,
) -> GradeReport:
    started = time.perf_counter()
    report = grader.report
    done = finished_keys(path)
    todo = [m for m in matches if m.key not in done]
    report.skipped += len(matches) - len(todo)
    if on_done and report.skipped:
        on_done(report.skipped)

    async def one(match: Match) -> None:
        if len(match.models) == 1:
            record = await grader.single(match)
        else:
            record = await grader.pair(match)
        append_jsonl(path, record)
        report.judged += 1
        if on_done:
            on_done(1)

    await asyncio.gather(*(one(m) for m in todo))
    report.seconds = time.perf_counter() - started
    return report
