"""`palestra data`: clean-sharegpt, split-long, filter and sample conversation files."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import typer

app = typer.Typer(help="Prepare conversation data for training.", no_args_is_help=True)


def _write(records: list[dict[str, Any]], out: str) -> None:
    path = Path(out)
    if path.suffix == ".jsonl":
        path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))
    else:
        path.write_text(json.dumps(records, ensure_ascii=False, indent=2) + "\n")


def _report(counts: Counter[str], out: str, written: int) -> None:
    details = ", ".join(f"{reason} {n}" for reason, n in sorted(counts.items()))
    print(f"{written} records -> {out} ({details})")


@app.command("clean-sharegpt")
def clean_sharegpt(source: str, out: str) -> None:
    """HTML replies to markdown; drop empty, broken and duplicate conversations."""
    from palestra.train.data import read_records
    from palestra.train.data_tools import clean_sharegpt as clean

    records, counts = clean(read_records(source))
    _write(records, out)
    _report(counts, out, len(records))


@app.command("split-long")
def split_long(
    source: str,
    out: str,
    max_tokens: int = typer.Option(2048, "--max-tokens"),
    model_path: str = typer.Option(None, "--model-path", help="Tokenizer; default: bundled."),
) -> None:
    """Split conversations longer than --max-tokens at turn boundaries."""
    from transformers import AutoTokenizer

    from palestra.models.inspect import resolve_model_path
    from palestra.train.data import read_records
    from palestra.train.data_tools import split_long as split

    tokenizer = AutoTokenizer.from_pretrained(resolve_model_path(model_path))
    records, counts = split(
        read_records(source),
        lambda text: len(tokenizer(text, add_special_tokens=False)["input_ids"]),
        max_tokens,
    )
    _write(records, out)
    _report(counts, out, len(records))


@app.command("filter")
def filter_(
    source: str,
    out: str,
    min_turns: int = typer.Option(1, "--min-turns", help="Fewest assistant replies."),
    max_turns: int = typer.Option(0, "--max-turns", help="Most assistant replies; 0: any."),
    exclude_keyword: list[str] = typer.Option([], "--exclude-keyword"),
    model: list[str] = typer.Option([], "--model", help="Keep records whose model is one."),
) -> None:
    """Keep conversations by reply count, keywords and model."""
    from palestra.train.data import read_records
    from palestra.train.data_tools import filter_records

    records, counts = filter_records(
        read_records(source),
        min_turns=min_turns,
        max_turns=max_turns,
        exclude_keywords=tuple(exclude_keyword),
        models=tuple(model),
    )
    _write(records, out)
    _report(counts, out, len(records))


@app.command("sample")
def sample(
    source: str,
    out: str,
    n: int = typer.Option(..., "--n"),
    seed: int = typer.Option(0, "--seed"),
) -> None:
    """A seeded random sample of N conversations."""
    from palestra.train.data import read_records
    from palestra.train.data_tools import sample_records

    records = sample_records(read_records(source), n, seed)
    _write(records, out)
    _report(Counter({"sampled": len(records)}), out, len(records))
