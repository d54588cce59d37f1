"""Prometheus metrics for Palestra's apps, each app with its own registry (no globals):
request counts by endpoint and status, errors by type, time to first token, generation
speed, tokens generated, requests in flight, and queue length."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from fastapi import FastAPI, Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from starlette.types import ASGIApp, Message, Receive, Scope, Send

if TYPE_CHECKING:
    from palestra.serve.wire import ChunkMessage

ERROR_TYPES_BY_STATUS = {
    400: "invalid_request_error",
    401: "authentication_error",
    404: "not_found_error",
    429: "overloaded_error",
    499: "client_disconnected",
    503: "service_unavailable_error",
}
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
SPEED_BUCKETS = (1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000)


class ServingMetrics:
    def __init__(self, prefix: str):
        self.registry = CollectorRegistry()
        self.requests = Counter(
            f"{prefix}_requests",
            "HTTP requests by endpoint and status",
            ["endpoint", "status"],
            registry=self.registry,
        )
        self.errors = Counter(
            f"{prefix}_errors",
            "Failed requests and streams by error type",
            ["type"],
            registry=self.registry,
        )
        self.in_flight = Gauge(
            f"{prefix}_requests_in_flight", "Requests being handled", registry=self.registry
        )
        self.queue_length = Gauge(
            f"{prefix}_queue_length",
            "Requests running or waiting on the workers",
            registry=self.registry,
        )
        self.time_to_first_token = Histogram(
            f"{prefix}_time_to_first_token_seconds",
            "From request to first generated token",
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.tokens_per_second = Histogram(
            f"{prefix}_generation_tokens_per_second",
            "Generated tokens per second per request after the first token",
            buckets=SPEED_BUCKETS,
            registry=self.registry,
        )
        self.generated_tokens = Counter(
            f"{prefix}_generated_tokens", "Generated tokens", registry=self.registry
        )

    def chunk_streamed(
        self, started: float, first_token: float | None, chunk: ChunkMessage
    ) -> float | None:
        """Count one chunk of a generation asked for at `started` whose first token came at
        `first_token` (None: not yet); returns the first token's time, now if it is in
        this chunk."""
        if first_token is None and (chunk.text or chunk.token_ids):
            first_token = time.monotonic()
            self.time_to_first_token.observe(first_token - started)
        if chunk.finish_reason:
            self._generation_done(first_token, chunk.completion_tokens or 0)
        return first_token

    def _generation_done(self, first_token: float | None, tokens: int) -> None:
        """Count a generation's tokens, and its speed after the first token."""
        self.generated_tokens.inc(tokens)
        if first_token is not None and tokens > 1:
            elapsed = time.monotonic() - first_token
            if elapsed > 0:
                self.tokens_per_second.observe((tokens - 1) / elapsed)

    def render(self) -> Response:
        return Response(generate_latest(self.registry), media_type=CONTENT_TYPE_LATEST)


class _CountRequests:
    """Pure ASGI middleware (it leaves `receive` alone, so disconnects stay visible)."""

    def __init__(self, app: ASGIApp, metrics: ServingMetrics):
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500

        async def record_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        self.metrics.in_flight.inc()
        try:
            await self.app(scope, receive, record_status)
        finally:
            self.metrics.in_flight.dec()
            endpoint = getattr(scope.get("route"), "path", "unmatched")
            self.metrics.requests.labels(endpoint, str(status)).inc()
            if status >= 400:
                kind = ERROR_TYPES_BY_STATUS.get(status, "internal_error")
                self.metrics.errors.labels(kind).inc()


def install_metrics(
    app: FastAPI, metrics: ServingMetrics, refresh: Callable[[], Awaitable[None]] | None = None
) -> None:
    """Count every request and serve `GET /metrics` (after `refresh` updates gauges)."""
    app.state.metrics = metrics
    app.add_middleware(_CountRequests, metrics=metrics)

    @app.get("/metrics", include_in_schema=False)
    async def metrics_endpoint() -> Response:
        if refresh is not None:
            await refresh()
        return metrics.render()
