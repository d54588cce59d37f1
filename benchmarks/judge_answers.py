"""How fast `palestra judge answer` gets through a question set against a served model,
by concurrency: wall time, questions/s and completion tokens/s (two turns per question,
the second sent after the first answer, as MT-bench does).

    palestra serve &      # or any OpenAI-compatible server
    python benchmarks/judge_answers.py --base-url http://127.0.0.1:8000/v1 \\
        --model palestra-tiny --bench ../shared/data/mt_bench --concurrency 1,8,16

Answers go to a temporary folder; the bench folder is only read.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
from pathlib import Path

from palestra.judge.answers import AnswerSettings, generate_answers
from palestra.judge.bench import load_questions
from palestra.judge.client import ChatModel, ModelSource


async def one_level(
    base_url: str, model: str, bench: Path, concurrency: int, max_tokens: int, first_n: int | None
) -> tuple[float, int, int]:
    questions = load_questions(bench / "question.jsonl")[:first_n]
    chat_model = ChatModel.open(ModelSource(model, api_base=base_url))
    with tempfile.TemporaryDirectory() as folder:
        settings = AnswerSettings(max_tokens=max_tokens, concurrency=concurrency)
        report = await generate_answers(
            chat_model, questions, Path(folder) / "answers.jsonl", settings
        )
    await chat_model.close()
    if report.failed_turns:
        print(f"  note: {report.failed_turns} turns failed")
    return report.seconds, len(questions), report.completion_tokens


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base-url", default="http://127.0.0.1:8000/v1")
    parser.add_argument("--model", default="palestra-tiny")
    parser.add_argument("--bench", type=Path, default=Path("../shared/data/mt_bench"))
    parser.add_argument("--concurrency", default="1,8,16")
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--first-n", type=int, default=None)
    args = parser.parse_args()
    print("| concurrency | questions | wall s | questions/s | completion tok/s |")
    print("|---:|---:|---:|---:|---:|")
    for level in (int(c) for c in args.concurrency.split(",")):
        seconds, count, tokens = asyncio.run(
            one_level(args.base_url, args.model, args.bench, level, args.max_tokens, args.first_n)
        )
        rates = f"{count / seconds:.2f} | {tokens / seconds:.0f}"
        print(f"| {level} | {count} | {seconds:.1f} | {rates} |")


if __name__ == "__main__":
    main()
