"""Authenticated traffic inside a Palestra cluster: one shared secret, the cluster token,
between the controller, the workers, the API servers and the web UI; and TLS between
machines.

With a token (`PALESTRA_CLUSTER_TOKEN`, or the first line of `--cluster-token-file`):

- the controller and the workers answer only requests that carry it
  (`Authorization: Bearer <token>`), except `/health`: a worker without it cannot
  register, so it is never dispatched to and never receives a prompt, and nobody without
  it can list the workers, ask for a dispatch or call a worker directly;
- a worker proves that it holds the token in every answer: the API server sends a fresh
  nonce (`X-Palestra-Nonce`) and reads a stream only when the answer carries
  HMAC-SHA256(token, nonce) (`X-Palestra-Proof`), so a server that took over a registered
  worker's address cannot answer in its place;
- the API server also takes the token as an API key (for the web UI), when it asks for
  keys at all.

Without a token, traffic is open, as in FastChat; the controller says so at start when it
listens beyond loopback. TLS: `--ssl-certfile`/`--ssl-keyfile` make a server speak HTTPS
(uvicorn's settings); `--ssl-ca-certs` is the CA its clients trust for the others.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import ssl
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from palestra.core.errors import AuthenticationError, InvalidRequestError
from palestra.core.settings import Settings, option

if TYPE_CHECKING:
    from starlette.types import ASGIApp, Message, Receive, Scope, Send

TOKEN_VARIABLE = "PALESTRA_CLUSTER_TOKEN"
NONCE_HEADER = "x-palestra-nonce"
PROOF_HEADER = "x-palestra-proof"
OPEN_PATHS = frozenset({"/health"})
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})


class ClusterSettings(Settings):
    """The cluster's shared secret and TLS between machines."""

    cluster_token_file: Path | None = option(
        None,
        f"File whose first line is the cluster's shared secret (else ${TOKEN_VARIABLE}); "
        "controller, workers, API servers and web UI must share it.",
    )
    ssl_certfile: Path | None = option(None, "This server's TLS certificate (PEM): serve HTTPS.")
    ssl_keyfile: Path | None = option(None, "The private key of --ssl-certfile (PEM).")
    ssl_ca_certs: Path | None = option(
        None, "CA certificates (PEM) that signed the other cluster servers' certificates."
    )

    @cached_property
    def token(self) -> str | None:
        """The shared secret, or None (open traffic)."""
        if self.cluster_token_file is not None:
            try:
                lines = self.cluster_token_file.read_text("utf-8").splitlines()
            except OSError as exc:
                raise InvalidRequestError(
                    f"cannot read --cluster-token-file {self.cluster_token_file}: {exc.strerror}"
                ) from None
            token = lines[0].strip() if lines else ""
            if not token:
                raise InvalidRequestError(
                    f"--cluster-token-file {self.cluster_token_file} is empty; write the "
                    "shared secret on its first line (e.g. `openssl rand -hex 32`)"
                )
            return token
        return os.environ.get(TOKEN_VARIABLE) or None

    def check(self) -> None:
        """Refuse half-given TLS settings and unreadable files up front, in one line."""
        if (self.ssl_certfile is None) != (self.ssl_keyfile is None):
            raise InvalidRequestError("--ssl-certfile and --ssl-keyfile go together")
        for name in ("ssl_certfile", "ssl_keyfile", "ssl_ca_certs"):
            path = getattr(self, name)
            if path is not None and not Path(path).is_file():
                raise InvalidRequestError(f"--{name.replace('_', '-')} {path} does not exist")
        _ = self.token

    @property
    def scheme(self) -> str:
        return "https" if self.ssl_certfile else "http"

    def server_options(self) -> dict[str, Any]:
        """uvicorn.Config's TLS settings."""
        if not self.ssl_certfile:
            return {}
        return {"ssl_certfile": str(self.ssl_certfile), "ssl_keyfile": str(self.ssl_keyfile)}

    def client_options(self) -> dict[str, Any]:
        """httpx client settings for calls to other cluster servers."""
        options: dict[str, Any] = {}
        if self.token:
            options["headers"] = {"Authorization": f"Bearer {self.token}"}
        if self.ssl_ca_certs:
            options["verify"] = ssl.create_default_context(cafile=str(self.ssl_ca_certs))
        return options


def proof(token: str, nonce: str) -> str:
    """What a worker answers to a nonce: HMAC-SHA256(token, nonce), hex."""
    return hmac.new(token.encode(), nonce.encode(), hashlib.sha256).hexdigest()


def new_nonce() -> str:
    return secrets.token_hex(16)


def proves(token: str, nonce: str, answer: str | None) -> bool:
    return answer is not None and hmac.compare_digest(proof(token, nonce), answer)


def open_warning(host: str, token: str | None, what: str) -> str | None:
    """A line for the log when a server takes unauthenticated traffic beyond loopback."""
    if token or host in LOOPBACK_HOSTS:
        return None
    return (
        f"the {what} listens on {host} without a cluster token: anyone who reaches it can "
        f"register a worker and receive users' prompts; set {TOKEN_VARIABLE} (or "
        "--cluster-token-file) on every server of the cluster"
    )


class RequireClusterToken:
    """ASGI middleware: the token on every request but `/health`; a proof of it on every
    answer to a request that sent a nonce."""

    def __init__(self, app: ASGIApp, token: str):
        self.app = app
        self.token = token

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in OPEN_PATHS:
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        given = headers.get(b"authorization", b"").decode("latin-1")
        if not secrets.compare_digest(given, f"Bearer {self.token}"):
            from palestra.serve.http_errors import error_response

            reason = "missing" if not given else "wrong"
            error = AuthenticationError(
                f"{reason} cluster token: every server of this cluster needs the same "
                f"{TOKEN_VARIABLE} (or --cluster-token-file)",
                code="invalid_cluster_token",
            )
            await error_response(error, scope["path"])(scope, receive, send)
            return
        nonce = headers.get(NONCE_HEADER.encode(), b"").decode("latin-1")
        if not nonce:
            await self.app(scope, receive, send)
            return
        answer = proof(self.token, nonce).encode()

        async def send_with_proof(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {
                    **message,
                    "headers": [*message["headers"], (PROOF_HEADER.encode(), answer)],
                }
            await send(message)

        await self.app(scope, receive, send_with_proof)
