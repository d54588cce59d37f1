"""`palestra models`: the model families Palestra knows, and what it would do with a folder."""

from __future__ import annotations

import json

import typer

app = typer.Typer(
    help="Model families and model folders.", invoke_without_command=True, no_args_is_help=False
)


@app.callback()
def list_models(
    ctx: typer.Context, as_json: bool = typer.Option(False, "--json", help="Print JSON.")
) -> None:
    """List the model families the registry knows."""
    if ctx.invoked_subcommand is not None:
        return
    from palestra.plugins import model_registry

    families = list(model_registry())
    if as_json:
        typer.echo(
            json.dumps(
                [
                    {
                        "id": f.id,
                        "name": f.display_name,
                        "kind": f.kind,
                        "template": f.template or "tokenizer",
                        "backend": f.default_backend,
                        "aliases": list(f.aliases),
                        "link": f.card.link,
                    }
                    for f in families
                ],
                indent=2,
            )
        )
        return
    width = max(len(f.id) for f in families)
    typer.echo(f"{'FAMILY':<{width}}  {'KIND':<9}  {'TEMPLATE':<14}  NAME")
    for f in families:
        typer.echo(
            f"{f.id:<{width}}  {f.kind:<9}  {(f.template or 'tokenizer'):<14}  {f.display_name}"
        )


@app.command("show")
def show(path: str = typer.Argument(..., help="A model folder, or 'palestra-tiny'.")) -> None:
    """Say what Palestra would do with a model folder: family, template, backend."""
    from palestra.models.inspect import inspect_model

    typer.echo(json.dumps(inspect_model(path).describe(), indent=2))
