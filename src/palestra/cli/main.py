"""`palestra`: the command-line entry point. Each command group lives in its own module;
this file wires them together and turns Palestra's errors into one clear line."""

from __future__ import annotations

import sys

import typer

from palestra import __version__
from palestra.cli import chat, models, templates
from palestra.core.errors import PalestraError

app = typer.Typer(
    name="palestra",
    help="Palestra: train, serve and evaluate LLM chatbots.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.command("chat", help=chat.__doc__)(chat.chat)
app.add_typer(models.app, name="models")
app.add_typer(templates.app, name="templates")


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", help="Print the version and exit."),
) -> None:
    if version:
        typer.echo(__version__)
        raise typer.Exit()


def main() -> None:
    try:
        app()
    except PalestraError as exc:
        print(f"palestra: error: {exc}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
