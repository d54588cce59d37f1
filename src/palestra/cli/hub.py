"""`palestra pull / list / show / rm`: models on this machine, the Ollama way, kept in the
Hugging Face cache (`models.hub` fetches, `models.cache` lists, describes and removes)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import typer

from palestra.core.errors import InvalidRequestError
from palestra.models.hub import HubReference


def _reference(text: str, revision: str | None = None) -> HubReference:
    reference = HubReference.parse(text, revision)
    if reference is None:
        raise InvalidRequestError(
            f"{text!r} is not a Hub id; give ORG/NAME, ORG/NAME@REVISION or ORG/NAME:QUANT"
        )
    return reference


def _size(size_bytes: int) -> str:
    size = float(size_bytes)
    for unit in ("B", "KB", "MB"):
        if size < 1000:
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{size:.1f} GB"


def _ago(timestamp: float) -> str:
    seconds = max(0, time.time() - timestamp)
    for unit, span in (("days", 86400), ("hours", 3600), ("minutes", 60)):
        if seconds >= span:
            return f"{int(seconds // span)} {unit} ago"
    return "just now"


def pull(
    model: str = typer.Argument(..., help="ORG/NAME[@REVISION] or ORG/NAME:QUANT (GGUF)."),
    revision: str = typer.Option(None, "--revision", help="Branch, tag or commit."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars."),
) -> None:
    """Download a model from the Hugging Face Hub into its cache (resumes a cut download;
    only the files a model needs: safetensors when there are any, one GGUF quantisation)."""
    from palestra.models.hub import fetch

    reference = _reference(model, revision)
    folder = fetch(reference, progress=not quiet)
    size = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
    typer.echo(f"{reference}: {_size(size)} in {folder}")


def list_cached(as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """The models in the Hugging Face cache: size, family, template, quantisation, last use."""
    from palestra.models.cache import cached_models

    models = cached_models()
    if as_json:
        typer.echo(json.dumps([m.row() for m in models], indent=2))
        return
    if not models:
        typer.echo("no models in the Hugging Face cache; fetch one with `palestra pull ORG/NAME`")
        return
    rows = [
        (
            m.repo_id,
            ",".join(m.refs),
            _size(m.size_bytes),
            m.family or "-",
            m.template,
            m.quantization or "-",
            _ago(m.last_used),
        )
        for m in models
    ]
    header = ("MODEL", "REVISIONS", "SIZE", "FAMILY", "TEMPLATE", "QUANT", "LAST USED")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        typer.echo(
            "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        )


def show(
    model: str = typer.Argument(..., help="A cached ORG/NAME[@REVISION], or a model folder."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """A model's config, template, context length, license and card."""
    from palestra.models.cache import find_cached, model_card

    folder = Path(model) if Path(model).is_dir() else find_cached(_reference(model))
    card = model_card(folder)
    if as_json:
        typer.echo(json.dumps(card, indent=2))
        return
    for key, value in card.items():
        if key not in ("card", "generation_config") and value is not None:
            typer.echo(f"{key.replace('_', ' ')}: {value}")
    if card["card"]:
        typer.echo("\n" + card["card"])


def rm(
    model: str = typer.Argument(..., help="ORG/NAME (every cached revision) or ORG/NAME@REV."),
) -> None:
    """Remove a model from the Hugging Face cache (refused while a process has it loaded)."""
    from palestra.models.cache import remove

    reference = _reference(model)
    freed = remove(reference)
    typer.echo(f"removed {reference}: {_size(freed)} freed")


def register(app: typer.Typer) -> None:
    app.command("pull")(pull)
    app.command("list")(list_cached)
    app.command("show")(show)
    app.command("rm")(rm)
