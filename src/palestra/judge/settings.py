"""`AnswerOptions`: what `palestra judge answer` answers, where the answering model runs
(a hosted endpoint here; a local model through the shared `ModelSettings` and backend
options) and how the answers are generated."""

from __future__ import annotations

from pathlib import Path

from palestra.core.settings import Settings, option

BENCH_HELP = "Bench folder with question.jsonl (and reference_answer/, model_answer/)."
OUT_HELP = "Where model_answer/ and model_judgment/ are written (default: the bench folder)."
DEFAULT_BENCH = Path("data/mt_bench")


class AnswerOptions(Settings):
    """The question set, the answer file's model id, a hosted endpoint, and generation."""

    model: str = option(..., "Model id: names the answer file.")
    api_base: str | None = option(None, "OpenAI-compatible base URL (instead of --model-path).")
    api_type: str | None = option(None, "A provider type (palestra providers lists them).")
    api_key_env: str | None = option(None, "Env variable with the key.")
    provider_model: str | None = option(None, "Provider's model id.")
    endpoint_file: Path | None = option(
        None, "FastChat's api_endpoint.json: answer with its model named --model."
    )
    bench: Path = option(DEFAULT_BENCH, BENCH_HELP)
    out: Path | None = option(None, OUT_HELP)
    first_n: int | None = option(None, "Only the first N questions.")
    question_begin: int | None = option(None, "First question index.")
    question_end: int | None = option(None, "Question index to stop before.")
    max_tokens: int = option(1024, "Tokens per answer.")
    concurrency: int = option(8, "Questions answered at once.")
    force_temperature: float | None = option(None, "One temperature for every category.")
    system: str | None = option(None, "A system message for every question.")
