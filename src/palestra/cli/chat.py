"""Chat with a model in the terminal (default: the bundled Palestra Tiny).

Type a message and press Enter. Commands: !!exit, !!reset, !!remove, !!regen, !!save FILE,
!!load FILE. Lines piped on stdin are sent one by one and each reply is printed on a line.
Options: the terminal's (`terminal.settings.ChatSettings`), the model's
(`backends.options.ModelSettings`) and the chosen backend's.
"""

from __future__ import annotations

from collections.abc import Callable

import typer

from palestra.backends.options import ModelSettings
from palestra.cli.options import Parsed, Section, settings_command
from palestra.cli.sections import backend_sections, model_backend
from palestra.terminal.settings import ChatSettings


def run(parsed: Parsed) -> None:
    from palestra.plugins import get_template

    model: ModelSettings = parsed["model"]
    settings: ChatSettings = parsed["chat"]
    if len(model.model_path) > 1:
        raise typer.BadParameter("palestra chat talks to one model: give one --model-path")
    sampling = settings.sampling()  # bad values fail fast, before torch and the weights load
    if model.conv_template:
        get_template(model.conv_template)
    path = model.local_path(0)  # a Hub id is fetched now: its errors come before torch loads

    from palestra.backends.hf.cpu_threads import load_torch_teamless

    load_torch_teamless()  # before torch loads: no OpenMP team on the main thread
    from palestra.backends.hf.loading import quiet_transformers
    from palestra.terminal.console import make_io
    from palestra.terminal.loop import run_chat
    from palestra.terminal.session import ChatSession

    quiet_transformers()
    backend = model_backend(parsed, model, 0, path)
    io = make_io(settings.style, settings.multiline)
    io.info(
        f"palestra chat: {backend.model_name} (template {backend.template.name}); !!exit to quit"
    )
    session = ChatSession(
        backend, sampling, system=settings.system, keep_history=not settings.no_history
    )
    run_chat(session, io, debug=settings.debug)


def command() -> Callable[..., None]:
    sections = [
        Section("model", ModelSettings, exclude=frozenset({"model_names"})),
        *backend_sections(),
        Section("chat", ChatSettings),
    ]
    return settings_command(sections, run)
