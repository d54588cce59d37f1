"""`palestra arena`: clean battle files, rate models (Bradley-Terry with intervals,
style control, categories), writing the leaderboard as markdown, CSV, JSON and charts;
turn votes into preference data for training; and move the web UI store's conversations
and votes out of and into FastChat's log format."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Any, Literal

import typer

from palestra.arena.preferences import PreferenceOptions
from palestra.arena.release import ReleaseOptions
from palestra.arena.settings import CleaningOptions, RatingOptions
from palestra.cli.options import Parsed, Section, settings_command
from palestra.core.errors import InvalidRequestError
from palestra.core.settings import Settings, option

app = typer.Typer(
    help="Arena battles: cleaning, ratings, and the web UI store's export/import.",
    no_args_is_help=True,
)


class CleanArguments(Settings):
    source: Path = option(
        ..., "Battles: clean_battle JSON/JSONL, vote logs, or a store.", positional=True
    )
    output: Path = option(..., "Where to write the kept battles (JSON).", positional=True)


def _clean(parsed: Parsed) -> None:
    from palestra.arena.battles import save_battles
    from palestra.arena.cleaning import clean
    from palestra.arena.pipeline import read_battles

    arguments: CleanArguments = parsed["arguments"]
    battles = read_battles(str(arguments.source))
    kept, reports = clean(battles, parsed["cleaning"])
    for report in reports:
        note = f"  ({report.note})" if report.note else ""
        typer.echo(f"{report.name:<40} -{report.removed}{note}")
    typer.echo(f"kept {len(kept)} of {len(battles)} battles -> {arguments.output}")
    save_battles(kept, arguments.output)


app.command("clean", help="Filter battles and report what each filter removed.")(
    settings_command(
        [Section("arguments", CleanArguments), Section("cleaning", CleaningOptions)], _clean
    )
)


class RateArguments(Settings):
    source: str = option(
        ...,
        "Battles (FastChat formats), Arena pair counts, or a web UI store (.db / URL).",
        positional=True,
    )
    out: Path | None = option(None, "Folder for leaderboard files and charts.")
    where: list[str] = option(
        [], "FIELD=VALUE (repeatable), e.g. language=english, turn=>1, categories=coding."
    )
    by: str | None = option(None, "A leaderboard per value of this field (e.g. categories).")
    clean_first: bool = option(
        True,
        "Apply the cleaning options first (--no-clean: rate every battle as read).",
        flag="--clean",
        secondary="--no-clean",
    )
    output_format: Literal["markdown", "csv", "json"] = option(
        "markdown", "markdown, csv or json.", flag="--format"
    )


def _rate(parsed: Parsed) -> None:
    from palestra.arena.leaderboard import (
        field_values,
        filter_battles,
        leaderboard_from_counts,
        parse_conditions,
    )
    from palestra.arena.pipeline import is_store, rate_battles, read_battles
    from palestra.arena.ratings.counts import PairCounts

    arguments: RateArguments = parsed["arguments"]
    options: RatingOptions = parsed["rating"]
    source = arguments.source
    boards: dict[str, Any] = {}
    if not is_store(source) and _is_pair_counts(Path(source)):
        boards["all"] = leaderboard_from_counts(PairCounts.from_arena_pair_counts(source), options)
    else:
        battles = read_battles(source, texts=False)  # a store's facts are enough to rate
        cleaning = parsed["cleaning"] if arguments.clean_first else None
        conditions = parse_conditions(arguments.where)
        result = rate_battles(battles, options, cleaning, conditions)
        typer.echo(result.summary(), err=True)
        if result.board is None:
            raise InvalidRequestError("fewer than two models left to rate (after filters)")
        boards["all"] = result.board
        if arguments.by:  # a board per value, from the battles already cleaned and filtered
            kept = result.battles
            for value in sorted({v for b in kept for v in field_values(b, arguments.by)}):
                subset = rate_battles(filter_battles(kept, {arguments.by: value}), options)
                if subset.board is not None:
                    boards[f"{arguments.by}={value}"] = subset.board
    from palestra.arena.charts import one_browser_for_pngs

    with one_browser_for_pngs() if arguments.out else contextlib.nullcontext():
        for name, board in boards.items():
            if len(boards) > 1:
                typer.echo(f"\n## {name}\n")
            typer.echo(_render(board, arguments.output_format), nl=False)
            if arguments.out:
                _write(board, arguments.out if name == "all" else arguments.out / _slug(name))


app.command("rate", help="Rate the models in battle files, Arena pair counts or a store.")(
    settings_command(
        [
            Section("arguments", RateArguments),
            Section("rating", RatingOptions),
            Section("cleaning", CleaningOptions),
        ],
        _rate,
    )
)


def _preferences(parsed: Parsed) -> None:
    from palestra.arena.preferences import export_preferences

    options = parsed["preferences"]
    report = export_preferences(options, parsed["cleaning"])
    for line in report.lines():
        typer.echo(line)
    if not report.records:
        raise InvalidRequestError(
            f"no preference records from {options.source}: see what was dropped above"
        )
    typer.echo(f"wrote {options.out}; train with: palestra train dpo {options.out} --out DIR")


app.command(
    "preferences",
    help="Write chosen/rejected (or labelled) answers from arena votes for DPO, KTO, ORPO.",
)(
    settings_command(
        [
            Section("preferences", PreferenceOptions),
            Section("cleaning", CleaningOptions),
        ],
        _preferences,
    )
)


def _release(parsed: Parsed) -> None:
    from palestra.arena.release import release

    options = parsed["release"]
    report = release(options, parsed["cleaning"])
    for reason, count in report.removed.items():
        typer.echo(f"removed: {reason}: -{count}")
    for kind, count in sorted(report.replaced.items()):
        typer.echo(f"replaced: <{kind}> x{count}")
    if not report.names_checked:
        typer.echo("names and places not checked: give --ner-model (a spaCy model)")
    typer.echo(
        f"released {report.released} of {report.read} battles by {report.voters} voters "
        f"-> {options.out}/battles.json, {options.out}/DATASHEET.md"
    )


app.command(
    "release",
    help="Write a public, de-identified battle release (FastChat's format) and its datasheet.",
)(
    settings_command(
        [Section("release", ReleaseOptions), Section("cleaning", CleaningOptions)], _release
    )
)


@app.command("export")
def export_command(
    store: str = typer.Argument(..., help="The web UI's store: SQLite file or database URL."),
    output: Path = typer.Argument(..., help="JSONL file in FastChat's conversation-log format."),
    since: float = typer.Option(None, "--since", help="Only events from this Unix time on."),
) -> None:
    """Write every stored conversation turn and vote as FastChat log lines."""
    from palestra.arena.pipeline import open_store

    count = open_store(store).export_jsonl(output, since)
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


@app.command("salt")
def salt_command(
    store: str = typer.Argument(..., help="The web UI's store: SQLite file or database URL."),
    remove: bool = typer.Option(
        False, "--remove", help="Delete it from the store once printed (keep the copy safe)."
    ),
) -> None:
    """Print the user-hashing salt kept in a store, to keep it apart (--user-salt-file or
    PALESTRA_USER_SALT) with the same user hashes."""
    from palestra.arena.pipeline import require_store
    from palestra.arena.store import ArenaStore

    opened = ArenaStore(require_store(store), salt="unused: only read what is stored")
    salt = opened.stored_salt()
    if salt is None:
        raise InvalidRequestError(f"{store} keeps no user salt")
    typer.echo(salt)
    if remove:
        opened.forget_salt()


@app.command("migrate")
def migrate_command(
    store: str = typer.Argument(..., help="Store to migrate: SQLite file or database URL."),
    to: str = typer.Option("head", "--to", help="Schema revision to go to (older: downgrade)."),
    dry_run: bool = typer.Option(
        False, "--dry-run", help="Say where the store is; change nothing."
    ),
) -> None:
    """Bring a store's schema to this Palestra's revision (opening a store does it too)."""
    from palestra.arena import migrate
    from palestra.arena.pipeline import require_store
    from palestra.arena.store import database_errors, open_engine

    engine = open_engine(require_store(store))
    shown = engine.url.render_as_string(hide_password=True)
    with database_errors(engine):
        if dry_run:
            with engine.connect() as connection:
                revision = migrate.current_revision(connection)
            typer.echo(f"{shown}: schema revision {revision}; this Palestra's is {migrate.head()}")
            return
        done = migrate.migrate(engine, to)
    if done.changed:
        typer.echo(f"{shown}: schema revision {done.before} -> {done.after}")
    else:
        typer.echo(f"{shown}: already at schema revision {done.after}")


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
