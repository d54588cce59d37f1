"""Getting MT-bench (`palestra judge download`): the public release from FastChat's
repository (questions, GPT-4 reference answers, judge prompts) and, on request, the 31
released models' answers and GPT-4 judgments from the lmsys/mt-bench space; or a copy of a
local folder in the same layout. Files land as BENCH_ROOT/judge_prompts.jsonl and
BENCH_ROOT/mt_bench/..., the layout every `palestra judge` command reads."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

from palestra.core.errors import InvalidRequestError

REPOSITORY = "https://raw.githubusercontent.com/lm-sys/FastChat/main/fastchat/llm_judge/data/"
SPACE = "https://huggingface.co/spaces/lmsys/mt-bench/resolve/main/data/"
CORE_FILES = (
    "judge_prompts.jsonl",
    "mt_bench/question.jsonl",
    "mt_bench/reference_answer/gpt-4.jsonl",
)
RELEASED_MODELS = (
    "alpaca-13b", "baize-v2-13b", "chatglm-6b", "claude-instant-v1", "claude-v1",
    "dolly-v2-12b", "falcon-40b-instruct", "fastchat-t5-3b", "gpt-3.5-turbo", "gpt-4",
    "gpt4all-13b-snoozy", "guanaco-33b", "guanaco-65b", "h2ogpt-oasst-open-llama-13b",
    "koala-13b", "llama-13b", "mpt-30b-chat", "mpt-30b-instruct", "mpt-7b-chat",
    "nous-hermes-13b", "oasst-sft-4-pythia-12b", "oasst-sft-7-llama-30b",
    "palm-2-chat-bison-001", "rwkv-4-raven-14b", "stablelm-tuned-alpha-7b", "tulu-30b",
    "vicuna-13b-v1.3", "vicuna-33b-v1.3", "vicuna-7b-v1.3", "wizardlm-13b", "wizardlm-30b",
)  # fmt: skip
RELEASED_FILES = (
    *(f"mt_bench/model_answer/{m}.jsonl" for m in RELEASED_MODELS),
    "mt_bench/model_judgment/gpt-4_single.jsonl",
    "mt_bench/model_judgment/gpt-4_pair.jsonl",
)


def copy_local(source: Path, target: Path) -> list[Path]:
    """Copy a local MT-bench data folder (with judge_prompts.jsonl and mt_bench/)."""
    if not (source / "mt_bench" / "question.jsonl").is_file():
        raise InvalidRequestError(
            f"{str(source)!r} is not an MT-bench data folder (no mt_bench/question.jsonl)"
        )
    copied = []
    for file in sorted(p for p in source.rglob("*.jsonl") if p.is_file()):
        destination = target / file.relative_to(source)
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(file, destination)
        copied.append(destination)
    return copied


def fetch(
    target: Path,
    *,
    with_answers: bool = False,
    on_file: Callable[[str], None] | None = None,
    timeout: float = 60.0,
) -> list[Path]:
    """Download the public release into `target`; a network failure names the file and
    suggests a local copy."""
    import httpx

    plan = [(REPOSITORY + name, name) for name in CORE_FILES]
    if with_answers:
        plan += [(SPACE + name, name) for name in RELEASED_FILES]
    written = []
    with httpx.Client(timeout=timeout, follow_redirects=True) as client:
        for url, name in plan:
            try:
                response = client.get(url)
                response.raise_for_status()
            except httpx.HTTPError as exc:
                raise InvalidRequestError(
                    f"cannot download {url}: {exc}. Without network access, copy MT-bench's "
                    "data folder here and use `palestra judge download --from PATH`"
                ) from exc
            destination = target / name
            destination.parent.mkdir(parents=True, exist_ok=True)
            destination.write_bytes(response.content)
            written.append(destination)
            if on_file:
                on_file(name)
    return written
