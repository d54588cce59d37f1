"""`palestra webui`: the web UI (arena battle, side-by-side, direct chat, leaderboard) for
the models a Palestra API serves and for API endpoints; `palestra serve` runs it too."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import typer

DEFAULT_STORE = "palestra-arena.db"


@dataclass(frozen=True)
class WebUIOptions:
    """Everything that shapes the UI, shared by `palestra webui` and `palestra serve`."""

    api_base: str | None
    api_key: str | None = None
    endpoint_file: Path | None = None
    store: str = DEFAULT_STORE
    arena_config: Path | None = None
    moderation: str | None = None
    moderation_words: Path | None = None
    moderate_everywhere: bool = False
    rate_limit: str | None = None
    max_input_chars: int = 12_000
    max_turns: int = 50


def build_service(options: WebUIOptions) -> Any:
    import importlib.util

    from palestra.arena.matchmaking import MatchmakingConfig
    from palestra.arena.store import ArenaStore
    from palestra.backends.remote import load_endpoint_file
    from palestra.core.errors import InvalidRequestError
    from palestra.webui.models import ModelDirectory
    from palestra.webui.safety import RateLimiter, load_moderator
    from palestra.webui.service import ArenaService, UISettings

    if importlib.util.find_spec("gradio") is None:
        raise InvalidRequestError("the web UI needs Gradio: pip install 'palestra[webui]'")
    endpoints = load_endpoint_file(options.endpoint_file) if options.endpoint_file else []
    directory = ModelDirectory(options.api_base, endpoints, options.api_key)
    moderator = (
        load_moderator(
            options.moderation, str(options.moderation_words) if options.moderation_words else None
        )
        if options.moderation
        else None
    )
    return ArenaService(
        directory,
        ArenaStore(options.store),
        MatchmakingConfig.from_file(options.arena_config) if options.arena_config else None,
        moderator,
        RateLimiter.parse(options.rate_limit) if options.rate_limit else None,
        UISettings(
            max_input_chars=options.max_input_chars,
            max_turns=options.max_turns,
            moderate_everywhere=options.moderate_everywhere,
        ),
    )


def webui_app(options: WebUIOptions) -> Any:
    from fastapi import FastAPI

    from palestra.webui.app import mount

    return mount(FastAPI(title="Palestra web UI"), build_service(options))


def webui(
    api_base: str = typer.Option(
        "http://127.0.0.1:8000/v1", "--api-base", help="Palestra's (or any) OpenAI API."
    ),
    api_key: str = typer.Option(None, "--api-key", help="Key for --api-base, if it needs one."),
    endpoint_file: Path = typer.Option(
        None, "--register-api-endpoint-file", help="API models (FastChat's JSON format)."
    ),
    store: str = typer.Option(DEFAULT_STORE, "--store", help="SQLite file or database URL."),
    arena_config: Path = typer.Option(
        None, "--arena-config", help="Battle sampling weights, targets, outages (JSON)."
    ),
    moderation: str = typer.Option(
        None, "--moderation", help="'keyword' or module:factory; guards battles."
    ),
    moderation_words: Path = typer.Option(None, "--moderation-words", help="Blocked words."),
    moderate_everywhere: bool = typer.Option(
        False, "--moderate-everywhere", help="Moderate direct chat and side-by-side too."
    ),
    rate_limit: str = typer.Option(None, "--rate-limit", help="Messages per user: N/SECONDS."),
    max_input_chars: int = typer.Option(12_000, "--max-input-chars"),
    max_turns: int = typer.Option(50, "--max-turns"),
    host: str = typer.Option("127.0.0.1", "--host"),
    port: int = typer.Option(7860, "--port"),
) -> None:
    """Serve the web UI: arena battles, side-by-side, direct chat, leaderboard."""
    from palestra.serve.runner import Endpoint, run_servers

    options = WebUIOptions(
        api_base, api_key, endpoint_file, store, arena_config, moderation, moderation_words,
        moderate_everywhere, rate_limit, max_input_chars, max_turns,
    )  # fmt: skip
    app = webui_app(options)
    status = run_servers(
        [Endpoint("webui", app, host, port)],
        on_started=lambda: print(f"palestra webui: http://{host}:{port}", flush=True),
    )
    if status:
        raise typer.Exit(status)
