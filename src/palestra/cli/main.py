"""`palestra`: the command-line entry point. Each command group lives in its own module;
this file wires them into one Typer app (hand-written commands, and those generated from
settings classes by `cli.options`), gives every command `--config FILE`, and turns
Palestra's errors into one clear line."""

from __future__ import annotations

import sys

import typer

from palestra import __version__
from palestra.cli import (
    arena,
    chat,
    convert,
    data,
    hub,
    judge,
    models,
    providers,
    serve,
    templates,
    train,
    webui,
)
from palestra.cli.options import add_config_option
from palestra.core.errors import PalestraError

app = typer.Typer(
    name="palestra",
    help="Palestra: train, serve and evaluate LLM chatbots.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.command("chat", help=chat.__doc__)(chat.command())
app.command("serve", help="Controller + worker + OpenAI-compatible API + web UI on this "
            "machine, in one command. Every worker, API and web UI option is a serve option "
            "too.")(serve.serve_command())  # fmt: skip
app.command("controller", help="Run the controller: tracks workers, picks one per request.")(
    serve.controller_command()
)
app.command("worker", help="Run a worker hosting models behind any backend.")(
    serve.worker_command()
)
app.command("api", help="Run the OpenAI-compatible API server.")(serve.api_command())
app.command("workers", help=serve.workers.__doc__)(serve.workers)
app.command("webui", help="Serve the web UI: arena battles, side-by-side, direct chat, "
            "leaderboard.")(webui.command())  # fmt: skip
app.command("test-message", help=serve.test_message.__doc__)(serve.test_message)
hub.register(app)
app.command("providers", help=providers.providers.__doc__)(providers.providers)
app.add_typer(models.app, name="models")
app.add_typer(arena.app, name="arena")
app.add_typer(templates.app, name="templates")
app.add_typer(convert.app, name="convert")
app.add_typer(train.app, name="train")
app.add_typer(data.app, name="data")
app.add_typer(judge.app, name="judge")
add_config_option(app)


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
