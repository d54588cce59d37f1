"""`palestra templates`: the named chat templates, and how one renders a conversation."""

from __future__ import annotations

import typer

app = typer.Typer(help="Named chat templates.", invoke_without_command=True)

SAMPLE = [
    {"role": "system", "content": "You are a helpful assistant."},
    {"role": "user", "content": "Hello!"},
    {"role": "assistant", "content": "Hi! How can I help?"},
    {"role": "user", "content": "What is 2 plus 2?"},
]


@app.callback()
def list_templates(ctx: typer.Context) -> None:
    """List the named templates."""
    if ctx.invoked_subcommand is not None:
        return
    from palestra.plugins import list_templates as all_templates

    templates = all_templates()
    width = max(len(t.name) for t in templates)
    for template in templates:
        typer.echo(f"{template.name:<{width}}  {template.description}")


@app.command("show")
def show(name: str = typer.Argument(..., help="Template name or .jinja file.")) -> None:
    """Render a sample conversation with a template."""
    from palestra.plugins import get_template
    from palestra.templates.render import render_prompt

    template = get_template(name)
    typer.echo(f"# {template.name}: {template.description}\n# source: {template.source}")
    typer.echo(
        f"# stop strings: {list(template.stop_strings)}; stop tokens: "
        f"{list(template.stop_tokens)}; stop token ids: {list(template.stop_token_ids)}"
    )
    typer.echo(render_prompt(template, SAMPLE))
