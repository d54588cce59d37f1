"""`WebUISettings`: every option of the web UI (where its models come from, where votes go,
battle sampling, moderation, rate and input limits), written once for `palestra webui`,
`palestra serve` and config files; and `build_service`, which turns them into the
`ArenaService` the pages use."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

from palestra.core.settings import Settings, option
from palestra.serve.settings import API_PORT

if TYPE_CHECKING:
    from fastapi import FastAPI

    from palestra.arena.settings import CleaningOptions, RatingOptions
    from palestra.webui.service import ArenaService

DEFAULT_STORE = "palestra-arena.db"
logger = logging.getLogger(__name__)


class WebUISettings(Settings):
    """What shapes the web UI's pages and what they store."""

    api_base: str | None = option(
        f"http://127.0.0.1:{API_PORT}/v1", "Palestra's (or any) OpenAI API serving the models."
    )
    api_key: str | None = option(None, "Key for --api-base, if it needs one.")
    endpoint_file: Path | None = option(
        None,
        "API provider models for the UI (FastChat's api_endpoint.json format).",
        flag="--register-api-endpoint-file",
    )
    store: str = option(DEFAULT_STORE, "Where votes and conversations go: SQLite file or URL.")
    arena_config: Path | None = option(None, "Battle sampling weights, targets, outages (JSON).")
    moderation: str | None = option(
        None, "'keyword' or module:factory; guards battles (everywhere with --moderate-everywhere)."
    )
    moderation_words: Path | None = option(None, "Blocked words for --moderation keyword.")
    moderate_everywhere: bool = option(
        False, "Moderate direct chat and side-by-side too, not only battles."
    )
    rate_limit: str | None = option(
        None, "Messages per user: N/SECONDS (e.g. 20/60), shared by web servers on one store."
    )
    vote_limit: str | None = option(
        None, "Votes per user: N/SECONDS (e.g. 100/86400), shared by web servers on one store."
    )
    category_judge: str | None = option(
        None,
        "A model (from --api-base or the endpoint file) that labels each battle's first "
        "prompt with categories, beside the rules; the labels are stored with the vote.",
    )
    terms_file: Path | None = option(
        None, "Terms of use (markdown) a browser must agree to before its first battle."
    )
    user_salt_file: Path | None = option(
        None,
        "File whose first line salts the user hashes, kept apart from the store "
        "(else PALESTRA_USER_SALT; else, with a warning, a salt in the store itself).",
    )
    preliminary_votes: int = option(
        100, "The Leaderboard marks models with fewer votes than this as preliminary."
    )
    gradio_api: bool = option(
        False,
        "Let Gradio's clients call the page's handlers (load tests, automation); off: "
        "they are private, and votes come only from the page.",
    )
    max_input_chars: int = option(12_000, "Longest message a user may send, in characters.")
    max_turns: int = option(50, "Most user turns in one conversation.")
    title: str = option("Palestra", "The page title.")


def read_salt(path: Path | None) -> str | None:
    """The user salt from `path`'s first line (None without a file)."""
    from palestra.core.errors import InvalidRequestError

    if path is None:
        return None
    if not path.is_file():
        raise InvalidRequestError(f"user salt file {str(path)!r} does not exist")
    lines = path.read_text("utf-8").splitlines()
    salt = lines[0].strip() if lines else ""
    if len(salt) < 16:
        raise InvalidRequestError(
            f"user salt file {str(path)!r} needs a first line of at least 16 characters "
            "(for example: openssl rand -hex 16)"
        )
    return salt


def build_service(
    settings: WebUISettings,
    rating: RatingOptions | None = None,
    cleaning: CleaningOptions | None = None,
) -> ArenaService:
    """The UI's service: the model directory, the store, matchmaking, moderation, limits,
    and the arena pipeline's options for the Leaderboard tab."""
    import importlib.util

    from palestra.arena.matchmaking import MatchmakingConfig
    from palestra.arena.store import ArenaStore
    from palestra.backends.remote import load_endpoint_file
    from palestra.core.errors import InvalidRequestError
    from palestra.webui.models import ModelDirectory
    from palestra.webui.safety import RateLimiter, load_moderator
    from palestra.webui.service import ArenaService

    if importlib.util.find_spec("gradio") is None:
        raise InvalidRequestError("the web UI needs Gradio: pip install 'palestra[webui]'")
    endpoints = load_endpoint_file(settings.endpoint_file) if settings.endpoint_file else []
    directory = ModelDirectory(settings.api_base, endpoints, settings.api_key)
    words = str(settings.moderation_words) if settings.moderation_words else None
    store = ArenaStore(settings.store, salt=read_salt(settings.user_salt_file))
    if store.salt_source == "store":
        logger.warning(
            "the salt that hashes users is kept in the store beside the hashes; keep it "
            "apart with --user-salt-file or PALESTRA_USER_SALT (copy the current one with "
            "`palestra arena salt %s` to keep existing hashes)",
            settings.store,
        )
    return ArenaService(
        directory,
        store,
        MatchmakingConfig.from_file(settings.arena_config) if settings.arena_config else None,
        load_moderator(settings.moderation, words) if settings.moderation else None,
        RateLimiter.parse(settings.rate_limit, store) if settings.rate_limit else None,
        RateLimiter.parse(settings.vote_limit, store, "vote") if settings.vote_limit else None,
        settings,
        rating,
        cleaning,
    )


def build_webui_app(
    settings: WebUISettings,
    rating: RatingOptions | None = None,
    cleaning: CleaningOptions | None = None,
) -> FastAPI:
    """A FastAPI app serving the UI at /."""
    from fastapi import FastAPI

    from palestra.webui.app import mount

    return mount(FastAPI(title="Palestra web UI"), build_service(settings, rating, cleaning))
