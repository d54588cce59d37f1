"""`palestra judge`: MT-bench style evaluation. `answer` generates answers to a question
set, `grade` has a judge model grade them (single, pairwise against a baseline, pairwise
among all), `show` prints scores, win rates and a Bradley-Terry table, `agreement` compares
judges, `download` fetches MT-bench, `browse` opens a web page to read it all."""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
from collections.abc import Callable, Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any

import typer

from palestra.backends.options import ModelSettings
from palestra.cli.options import Parsed, Section, settings_command
from palestra.cli.sections import backend_sections, model_backend
from palestra.core.errors import InvalidRequestError
from palestra.judge.settings import BENCH_HELP, DEFAULT_BENCH, OUT_HELP, AnswerOptions

app = typer.Typer(help="LLM-as-judge: MT-bench answers, judgments, scores.", no_args_is_help=True)


@contextlib.contextmanager
def _progress(description: str, total: int) -> Iterator[Callable[[int], None]]:
    """A progress bar on stderr; yields the callback that advances it."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    console = Console(stderr=True)
    with Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        disable=not console.is_terminal,
    ) as progress:
        task = progress.add_task(description, total=total)
        yield lambda n: progress.advance(task, n)


def _models(value: str | None) -> list[str]:
    return [m.strip() for m in value.split(",") if m.strip()] if value else []


def _source(
    name: str,
    model_path: str | None,
    api_base: str | None,
    api_type: str | None,
    api_key_env: str | None,
    provider_model: str | None,
    endpoint_file: Path | None = None,
) -> Any:
    from palestra.judge.client import ModelSource

    return ModelSource(
        name, model_path, api_base, api_type, api_key_env, provider_model, endpoint_file
    )


def _questions(bench: Path, first_n: int | None, begin: int | None, end: int | None) -> Any:
    from palestra.judge.bench import load_questions

    questions = load_questions(bench / "question.jsonl", begin=begin, end=end)
    return questions[:first_n] if first_n else questions


def _answer(parsed: Parsed) -> None:
    from palestra.judge.answers import AnswerSettings, generate_answers
    from palestra.judge.client import ChatModel

    options: AnswerOptions = parsed["answer"]
    model: ModelSettings = parsed["model"]
    hosted = options.api_base or options.api_type or options.endpoint_file
    if hosted and model.model_path:
        raise InvalidRequestError(
            f"{options.model}: give either a model path or an API endpoint, not both"
        )
    if not hosted and not model.model_path:
        raise InvalidRequestError(
            f"{options.model}: say where the model answers: --model-path (a folder, a Hub "
            "id or palestra-tiny), an OpenAI-compatible --api-base, an --api-type "
            "(palestra providers lists them), or an --endpoint-file"
        )
    questions = _questions(
        options.bench, options.first_n, options.question_begin, options.question_end
    )
    path = (
        (options.out or options.bench) / "model_answer" / f"{options.model.replace('/', '_')}.jsonl"
    )
    if hosted:
        source = _source(
            options.model, None, options.api_base, options.api_type, options.api_key_env,
            options.provider_model, options.endpoint_file,
        )  # fmt: skip
        chat_model = ChatModel.open(source)
    else:
        from palestra.backends.hf.cpu_threads import load_torch_teamless

        load_torch_teamless()  # before torch loads: no OpenMP team on the main thread
        from palestra.backends.hf.loading import quiet_transformers

        quiet_transformers()
        chat_model = ChatModel(model_backend(parsed, model, 0, model.local_path(0)), options.model)
    settings = AnswerSettings(
        options.max_tokens, options.concurrency, options.force_temperature, options.system
    )

    async def run() -> Any:
        try:
            with _progress(f"answering ({options.model})", len(questions)) as advance:
                return await generate_answers(chat_model, questions, path, settings, advance)
        finally:
            await chat_model.close()

    report = asyncio.run(run())
    typer.echo(report.summary(path))


app.command(
    "answer",
    help="Generate two-turn answers to a question set (resumes: answered questions are "
    "kept). A local model takes every model option (Hub ids, --revision, --conv-template, "
    "--device, --dtype, --load-8bit, --num-gpus, --adapter, --trust-remote-code, ...).",
)(
    settings_command(
        [
            Section("answer", AnswerOptions),
            Section("model", ModelSettings, exclude=frozenset({"model_names"})),
            *backend_sections(),
        ],
        _answer,
    )
)


@app.command("grade")
def grade_command(
    mode: str = typer.Option("single", "--mode", help="single, pairwise-baseline, pairwise-all."),
    models: str = typer.Option(
        None, "--models", help="Comma-separated (default: every model answered in --out)."
    ),
    baseline: str = typer.Option("gpt-3.5-turbo", "--baseline", help="For pairwise-baseline."),
    judge_model: str = typer.Option("gpt-4", "--judge-model", help="The judge's model id."),
    judge_api_base: str = typer.Option(None, "--judge-api-base", help="OpenAI-compatible URL."),
    judge_api_type: str = typer.Option(
        None, "--judge-api-type", help="A provider type (palestra providers lists them)."
    ),
    judge_endpoint_file: Path = typer.Option(
        None, "--judge-endpoint-file", help="FastChat's api_endpoint.json with --judge-model."
    ),
    judge_api_key_env: str = typer.Option(None, "--judge-api-key-env"),
    judge_model_path: str = typer.Option(None, "--judge-model-path", help="A local judge."),
    judge_reward_model: str = typer.Option(
        None,
        "--judge-reward-model",
        help="A reward model (palestra train reward) judges pairs: the higher reward wins.",
    ),
    judge_prompts: Path = typer.Option(
        None, "--judge-prompts", help="Judge prompt file (default: BENCH/../judge_prompts.jsonl)."
    ),
    reference_judge: str = typer.Option(
        "gpt-4", "--reference", help="Reference answers: BENCH/reference_answer/NAME.jsonl."
    ),
    bench: Path = typer.Option(DEFAULT_BENCH, "--bench", help=BENCH_HELP),
    out: Path = typer.Option(None, "--out", help=OUT_HELP),
    first_n: int = typer.Option(None, "--first-n", help="Only the first N questions."),
    concurrency: int = typer.Option(8, "--concurrency"),
    max_attempts: int = typer.Option(3, "--max-attempts", help="Asks per unparsable verdict."),
    max_tokens: int = typer.Option(2048, "--max-tokens"),
    price_input: float = typer.Option(0.0, "--price-input", help="USD per 1M prompt tokens."),
    price_output: float = typer.Option(0.0, "--price-output", help="USD per 1M output tokens."),
) -> None:
    """Judge answers; verdicts are cached and matches already judged are skipped."""
    from palestra.judge.bench import load_answers, load_references
    from palestra.judge.cache import JudgmentCache
    from palestra.judge.client import ChatModel
    from palestra.judge.grading import (
        GRADE_MODES,
        Grader,
        GradeReport,
        GradeSettings,
        judgment_path,
        plan_matches,
        run_grading,
    )
    from palestra.judge.prompts import load_judge_prompts
    from palestra.judge.reward import RewardJudge

    if mode not in GRADE_MODES:
        raise InvalidRequestError(f"--mode must be one of {', '.join(GRADE_MODES)}; got {mode!r}")
    target = out or bench
    questions = _questions(bench, first_n, None, None)
    prompts = (
        None  # a reward model reads no prompt
        if judge_reward_model
        else load_judge_prompts(judge_prompts or bench.parent / "judge_prompts.jsonl")
    )
    answers = load_answers(bench, target)
    chosen = _models(models) or sorted(load_answers(target))
    if not chosen:
        raise InvalidRequestError(
            f"no answered models in {target / 'model_answer'}; run `palestra judge answer`"
        )
    settings = GradeSettings(
        mode,  # type: ignore[arg-type]
        baseline if mode == "pairwise-baseline" else None,
        max_attempts,
        max_tokens,
        concurrency,
        price_input,
        price_output,
    )
    report = GradeReport()
    references = load_references(bench, reference_judge)
    matches = plan_matches(settings, questions, answers, chosen, prompts, references, report)
    judge: ChatModel | RewardJudge
    if judge_reward_model:
        if mode == "single":
            raise InvalidRequestError(
                "--judge-reward-model judges pairs: use --mode pairwise-baseline or pairwise-all"
            )
        judge = RewardJudge(judge_reward_model)
        judge_model = judge.name
    else:
        source = _source(
            judge_model, judge_model_path, judge_api_base, judge_api_type, judge_api_key_env,
            None, judge_endpoint_file,
        )  # fmt: skip
        judge = ChatModel.open(source)
    path = judgment_path(target, judge_model, settings.mode)
    cache = JudgmentCache(path.parent / "judge_cache.sqlite")
    grader = Grader(judge, cache, settings, report)

    async def run() -> GradeReport:
        try:
            with _progress(f"judging ({judge_model}, {mode})", len(matches)) as advance:
                return await run_grading(grader, matches, path, advance)
        finally:
            await judge.close()
            cache.close()

    typer.echo(asyncio.run(run()).summary(path))


def _clean(value: Any) -> Any:
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set):
        return (
            [_clean(v) for v in sorted(value)]
            if isinstance(value, set)
            else [_clean(v) for v in value]
        )
    return value


@app.command("show")
def show_command(
    mode: str = typer.Option("single", "--mode", help="single, pairwise-baseline, pairwise-all."),
    judge_model: str = typer.Option("gpt-4", "--judge-model"),
    models: str = typer.Option(None, "--models", help="Comma-separated (default: all judged)."),
    baseline: str = typer.Option("gpt-3.5-turbo", "--baseline"),
    bench: Path = typer.Option(DEFAULT_BENCH, "--bench", help=BENCH_HELP),
    out: Path = typer.Option(None, "--out", help=OUT_HELP),
    output_format: str = typer.Option("markdown", "--format", help="markdown or json."),
    rounds: int = typer.Option(100, "--rounds", help="Bootstrap rounds for the BT intervals."),
) -> None:
    """Scores per model (overall, per turn, per category) or pairwise win rates with a
    Bradley-Terry table."""
    from palestra.judge.bench import load_questions
    from palestra.judge.grading import GRADE_MODES, judgment_path
    from palestra.judge.results import (
        load_judgments,
        pairwise_markdown,
        pairwise_table,
        single_markdown,
        single_scores,
    )

    if mode not in GRADE_MODES:
        raise InvalidRequestError(f"--mode must be one of {', '.join(GRADE_MODES)}; got {mode!r}")
    if output_format not in ("markdown", "json"):
        raise InvalidRequestError(f"--format must be markdown or json; got {output_format!r}")
    records = load_judgments(judgment_path(out or bench, judge_model, mode))  # type: ignore[arg-type]
    wanted = set(_models(models))
    if mode == "single":
        records = [r for r in records if not wanted or r["model"] in wanted]
        question_file = bench / "question.jsonl"
        categories = (
            {str(q.question_id): q.category for q in load_questions(question_file)}
            if question_file.is_file()
            else {}
        )
        scores = single_scores(records, categories)
        if output_format == "json":
            typer.echo(json.dumps(_clean([asdict(s) for s in scores]), indent=1))
        else:
            typer.echo(single_markdown(scores))
        return
    if mode == "pairwise-baseline":
        records = [r for r in records if baseline in (r["model_1"], r["model_2"])]
    if wanted:
        allowed = wanted | ({baseline} if mode == "pairwise-baseline" else set())
        records = [r for r in records if {r["model_1"], r["model_2"]} <= allowed]
    if not records:
        raise InvalidRequestError("no pairwise judgments match these models and baseline")
    rows = pairwise_table(records, baseline if mode == "pairwise-baseline" else None)
    leaderboard = _bradley_terry(records, baseline if mode == "pairwise-baseline" else None, rounds)
    if output_format == "json":
        table = [{**asdict(r), "win_rate": r.win_rate, "loss_rate": r.loss_rate,
                  "adjusted_win_rate": r.adjusted_win_rate} for r in rows]  # fmt: skip
        payload = {"pairwise": table, "bradley_terry": json.loads(leaderboard.to_json())["rows"]}
        typer.echo(json.dumps(_clean(payload), indent=1))
    else:
        typer.echo(pairwise_markdown(rows))
        typer.echo("Bradley-Terry ratings (a tie or flipped verdict counts as a tie):\n")
        typer.echo(leaderboard.to_markdown())


def _bradley_terry(records: list[dict[str, Any]], anchor: str | None, rounds: int) -> Any:
    from palestra.arena.leaderboard import compute_leaderboard
    from palestra.arena.settings import ELO_MEAN, RatingOptions
    from palestra.judge.results import pair_battles

    options = RatingOptions(rounds=rounds, anchor=f"{anchor}={ELO_MEAN}" if anchor else None)
    board = compute_leaderboard(pair_battles(records), options)
    for row in board.rows:
        row.elo = None  # judge verdicts have no time order
    return board


@app.command("agreement")
def agreement_command(
    votes_a: Path = typer.Argument(..., help="Pairwise judgments or battle-style votes."),
    votes_b: Path = typer.Argument(None, help="Another vote file (default: the same file)."),
    judge_a: str = typer.Option(None, "--judge-a", help="Only judges whose name starts so."),
    judge_b: str = typer.Option(None, "--judge-b", help="Only judges whose name starts so."),
) -> None:
    """Agreement between two judges (or a judge and humans), with and without ties."""
    from palestra.judge.agreement import agreement, agreement_markdown, load_votes

    first = load_votes(votes_a, judge_a)
    second_path = votes_b or votes_a
    second = load_votes(second_path, judge_b)
    same = second_path == votes_a and judge_a == judge_b
    rows = agreement(first, second, same=same)
    names = (
        f"{votes_a.name}" + (f" [{judge_a}*]" if judge_a else ""),
        f"{second_path.name}" + (f" [{judge_b}*]" if judge_b else ""),
    )
    typer.echo(agreement_markdown(rows, names))


@app.command("download")
def download_command(
    to: Path = typer.Option(Path("data"), "--to", help="Folder to fill (mt_bench/ goes in it)."),
    source: Path = typer.Option(None, "--from", help="Copy a local MT-bench data folder."),
    with_answers: bool = typer.Option(
        False, "--with-answers", help="Also the 31 released models' answers and GPT-4 judgments."
    ),
) -> None:
    """Fetch MT-bench's questions, reference answers and judge prompts."""
    from palestra.judge.download import copy_local, fetch

    if source is not None:
        written = copy_local(source, to)
    else:
        written = fetch(to, with_answers=with_answers, on_file=lambda n: typer.echo(f"  {n}"))
    typer.echo(f"{len(written)} files in {to}; bench folder: {to / 'mt_bench'}")


@app.command("browse")
def browse_command(
    judge_model: str = typer.Option("gpt-4", "--judge-model", help="Whose judgments to show."),
    bench: Path = typer.Option(DEFAULT_BENCH, "--bench", help=BENCH_HELP),
    out: Path = typer.Option(None, "--out", help=OUT_HELP),
    host: str = typer.Option("127.0.0.1", "--host"),
    port: int = typer.Option(7861, "--port"),
) -> None:
    """A web page to read a question, two answers and the judgments side by side."""
    import importlib.util

    from palestra.judge.browser import BenchView, build_browser

    if importlib.util.find_spec("gradio") is None:
        raise InvalidRequestError("the browser needs Gradio: pip install 'palestra[webui]'")

    view = BenchView.load(bench, out or bench, judge_model.replace("/", "_"))
    typer.echo(f"judgment browser on http://{host}:{port}")
    build_browser(view).launch(server_name=host, server_port=port, show_error=True)
