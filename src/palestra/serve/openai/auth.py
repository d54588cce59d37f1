"""API keys: `Authorization: Bearer <key>` (or Anthropic's `x-api-key`) on every route but
health, metrics and docs. Pure ASGI middleware, so request bodies and disconnects pass
through untouched."""

from __future__ import annotations

import secrets

from starlette.types import ASGIApp, Receive, Scope, Send

from palestra.core.errors import AuthenticationError
from palestra.serve.http_errors import error_response

OPEN_PATHS = frozenset({"/health", "/metrics", "/docs", "/openapi.json"})


class RequireApiKey:
    def __init__(self, app: ASGIApp, keys: tuple[str, ...]):
        self.app = app
        self.keys = keys

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] == "OPTIONS" or scope["path"] in OPEN_PATHS:
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        header = headers.get(b"authorization", b"").decode("latin-1")
        key = header[7:] if header.lower().startswith("bearer ") else ""
        key = key or headers.get(b"x-api-key", b"").decode("latin-1")
        if any(secrets.compare_digest(key, known) for known in self.keys):
            await self.app(scope, receive, send)
            return
        reason = "missing" if not key else "incorrect"
        response = error_response(
            AuthenticationError(
                f"{reason} API key; send 'Authorization: Bearer <key>'", code="invalid_api_key"
            ),
            scope["path"],
        )
        await response(scope, receive, send)
