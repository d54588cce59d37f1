"""`palestra arena`: clean battle files and rate models (Bradley-Terry with intervals,
style control, categories), writing the leaderboard as markdown, CSV, JSON and charts; and
move the web UI store's conversations and votes out of and into FastChat's log format."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer

from palestra.core.errors import InvalidRequestError

app = typer.Typer(
    help="Arena battles: cleaning, ratings, and the web UI store's export/import.",
    no_args_is_help=True,
)


def _cleaning(
    include_named: bool, no_dedup: bool, daily_vote_cap: int | None, anomaly_alpha: float
) -> Any:
    from palestra.arena.cleaning import CleaningOptions

    return CleaningOptions(
        anony_only=not include_named,
        dedup=not no_dedup,
        daily_vote_cap=daily_vote_cap,
        anomaly_alpha=anomaly_alpha if anomaly_alpha > 0 else None,
    )


@app.command("clean")
def clean_command(
    source: Path = typer.Argument(..., help="Battles: clean_battle JSON/JSONL or vote logs."),
    output: Path = typer.Argument(..., help="Where to write the kept battles (JSON)."),
    include_named: bool = typer.Option(False, "--include-named", help="Keep named battles."),
    no_dedup: bool = typer.Option(False, "--no-dedup"),
    daily_vote_cap: int = typer.Option(None, "--daily-vote-cap"),
    anomaly_alpha: float = typer.Option(0.05, "--anomaly-alpha", help="0 disables."),
) -> None:
    """Filter battles and report what each filter removed."""
    from palestra.arena.battles import load_battles, save_battles
    from palestra.arena.cleaning import clean

    battles = load_battles(source)
    kept, reports = clean(
        battles, _cleaning(include_named, no_dedup, daily_vote_cap, anomaly_alpha)
    )
    for report in reports:
        note = f"  ({report.note})" if report.note else ""
        typer.echo(f"{report.name:<40} -{report.removed}{note}")
    typer.echo(f"kept {len(kept)} of {len(battles)} battles -> {output}")
    save_battles(kept, output)


def _options(
    interval: str,
    rounds: int,
    seed: int,
    anchor: str | None,
    scale: float,
    base: float,
    k: float,
    style_control: bool,
) -> Any:
    from palestra.arena.leaderboard import RatingOptions
    from palestra.arena.ratings.bradley_terry import Scale

    if interval not in ("bootstrap", "sandwich"):
        raise InvalidRequestError(f"--interval {interval!r}: use bootstrap or sandwich")
    anchor_model, anchor_value = None, 1000.0
    if anchor:
        name, sep, value = anchor.rpartition("=")
        try:
            anchor_value = float(value)
        except ValueError as exc:
            raise InvalidRequestError(
                f"--anchor {anchor!r}: expected MODEL=RATING or RATING (the mean)"
            ) from exc
        anchor_model = name if sep else None
    return RatingOptions(
        interval="sandwich" if interval == "sandwich" else "bootstrap",
        rounds=rounds,
        seed=seed,
        scale=Scale(scale, base, anchor_value, anchor_model),
        elo_k=k,
        style_control=style_control,
    )


@app.command("rate")
def rate_command(
    source: str = typer.Argument(
        ..., help="Battles (FastChat formats), Arena pair counts, or a web UI store (.db / URL)."
    ),
    out: Path = typer.Option(None, "--out", help="Folder for leaderboard files and charts."),
    interval: str = typer.Option("bootstrap", help="bootstrap or sandwich (closed form)."),
    rounds: int = typer.Option(100, help="Bootstrap rounds."),
    seed: int = typer.Option(0),
    anchor: str = typer.Option(None, help="MODEL=RATING, or RATING for the mean (1000)."),
    scale: float = typer.Option(400.0),
    base: float = typer.Option(10.0),
    k: float = typer.Option(4.0, help="Online Elo K (the reference column)."),
    style_control: bool = typer.Option(False, "--style-control"),
    where: list[str] = typer.Option(
        [], "--where", help="FIELD=VALUE (repeatable), e.g. language=English, turn=>1."
    ),
    by: str = typer.Option(None, "--by", help="A leaderboard per value of this field."),
    clean_first: bool = typer.Option(
        True, "--clean/--no-clean", help="Apply `arena clean`'s default filters first."
    ),
    output_format: str = typer.Option("markdown", "--format", help="markdown, csv or json."),
) -> None:
    """Rate the models in a battle file and print the leaderboard."""
    from palestra.arena.battles import load_battles
    from palestra.arena.cleaning import clean
    from palestra.arena.leaderboard import (
        compute_leaderboard,
        filter_battles,
        leaderboard_from_counts,
    )
    from palestra.arena.ratings.counts import PairCounts

    options = _options(interval, rounds, seed, anchor, scale, base, k, style_control)
    boards: dict[str, Any] = {}
    if not _is_store(source) and _is_pair_counts(Path(source)):
        boards["all"] = leaderboard_from_counts(PairCounts.from_arena_pair_counts(source), options)
    else:
        battles = _open_store(source).battles() if _is_store(source) else load_battles(source)
        if clean_first:
            battles, reports = clean(battles)
            removed = ", ".join(f"{r.name}: {r.removed}" for r in reports if r.removed)
            typer.echo(
                f"cleaning kept {len(battles)} battles ({removed or 'nothing removed'})", err=True
            )
        conditions = dict(_condition(w) for w in where)
        battles = filter_battles(battles, conditions)
        boards["all"] = compute_leaderboard(battles, options)
        if by:
            for value in sorted({str(b.field(by)) for b in battles}):
                subset = filter_battles(battles, {by: value})
                if len({b.model_a for b in subset} | {b.model_b for b in subset}) >= 2:
                    boards[f"{by}={value}"] = compute_leaderboard(subset, options)
    for name, board in boards.items():
        if len(boards) > 1:
            typer.echo(f"\n## {name}\n")
        typer.echo(_render(board, output_format), nl=False)
        if out:
            _write(board, out if name == "all" else out / _slug(name))


def _is_store(source: str) -> bool:
    return "://" in source or source.endswith((".db", ".sqlite", ".sqlite3"))


def _open_store(location: str) -> Any:
    from palestra.arena.store import ArenaStore

    if "://" not in location and not Path(location).is_file():
        raise InvalidRequestError(f"arena store {location!r} does not exist")
    return ArenaStore(location)


@app.command("export")
def export_command(
    store: str = typer.Argument(..., help="The web UI's store: SQLite file or database URL."),
    output: Path = typer.Argument(..., help="JSONL file in FastChat's conversation-log format."),
    since: float = typer.Option(None, "--since", help="Only events from this Unix time on."),
) -> None:
    """Write every stored conversation turn and vote as FastChat log lines."""
    count = _open_store(store).export_jsonl(output, since)
    typer.echo(f"{count} events -> {output}")


@app.command("import")
def import_command(
    store: str = typer.Argument(..., help="Store to add to: SQLite file or database URL."),
    logs: list[Path] = typer.Argument(..., help="FastChat conversation logs (JSONL)."),
) -> None:
    """Add FastChat conversation logs to a store (addresses are hashed, never kept)."""
    from palestra.arena.store import ArenaStore

    target = ArenaStore(store)
    for log in logs:
        if not log.is_file():
            raise InvalidRequestError(f"log file {str(log)!r} does not exist")
        imported, skipped = target.import_jsonl(log)
        typer.echo(f"{log}: {imported} events imported, {skipped} lines of other types skipped")


def _is_pair_counts(path: Path) -> bool:
    """The Chatbot Arena pair-count release: one JSON object with models, X and Y."""
    try:
        text = path.read_text("utf-8")
    except OSError as exc:
        raise InvalidRequestError(f"cannot read {path}: {exc}") from exc
    if not text.lstrip().startswith("{"):
        return False
    try:
        data = json.loads(text)
    except ValueError:
        return False  # JSONL: one record per line
    return isinstance(data, dict) and {"models", "X", "Y"} <= set(data)


def _condition(text: str) -> tuple[str, str]:
    name, sep, value = text.partition("=")
    if not sep or not name:
        raise InvalidRequestError(f"--where {text!r}: expected FIELD=VALUE")
    return name, value


def _render(board: Any, output_format: str) -> str:
    if output_format == "json":
        return str(board.to_json()) + "\n"
    if output_format == "csv":
        return str(board.to_csv())
    if output_format == "markdown":
        return str(board.to_markdown())
    raise InvalidRequestError(f"--format {output_format!r}: use markdown, csv or json")


def _write(board: Any, folder: Path) -> None:
    from palestra.arena.charts import write_charts

    folder.mkdir(parents=True, exist_ok=True)
    (folder / "leaderboard.md").write_text(board.to_markdown())
    (folder / "leaderboard.csv").write_text(board.to_csv())
    (folder / "leaderboard.json").write_text(board.to_json())
    files, png_problem = write_charts(board, folder)
    typer.echo(
        f"wrote leaderboard.md/.csv/.json and {len(files)} chart file(s) to {folder}", err=True
    )
    if png_problem:
        typer.echo(png_problem, err=True)
    summary = {"files": sorted(p.name for p in folder.iterdir())}
    (folder / "index.json").write_text(json.dumps(summary, indent=1) + "\n")


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in name)
