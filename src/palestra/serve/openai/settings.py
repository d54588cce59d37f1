"""`ApiSettings`: where the OpenAI-compatible API server finds workers, who may call it,
and from which web origins."""

from __future__ import annotations

from palestra.core.settings import Settings, option
from palestra.serve.settings import DEFAULT_CONTROLLER


class ApiSettings(Settings):
    """Where the API server finds workers, who may call it, and from which web origins."""

    controller: str = option(
        DEFAULT_CONTROLLER, "The controller's URL.", flag="--controller-address"
    )
    api_keys: tuple[str, ...] = option((), "Accepted API keys; none: no key needed.", comma=True)
    allowed_origins: tuple[str, ...] = option((), "Web origins allowed by CORS.", comma=True)
    allow_credentials: bool = option(False, "CORS: allow credentials.")
    allowed_methods: tuple[str, ...] = option(("*",), "CORS: allowed methods.", comma=True)
    allowed_headers: tuple[str, ...] = option(("*",), "CORS: allowed headers.", comma=True)
