"""`build_api_app`: the OpenAI-compatible API server (chat and text completions, the
Responses API, embeddings; Anthropic's Messages API beside them), with API keys, CORS and
`/health`."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI, Request
from fastapi.middleware.cors import CORSMiddleware

from palestra.serve.anthropic import messages
from palestra.serve.cluster import ClusterSettings
from palestra.serve.controller.table import WorkerTable
from palestra.serve.http_errors import ERROR_RESPONSES, install_error_handlers
from palestra.serve.metrics import ServingMetrics, install_metrics
from palestra.serve.openai import chat, completions, embeddings, models, scores
from palestra.serve.openai.auth import RequireApiKey
from palestra.serve.openai.settings import ApiSettings
from palestra.serve.openai.upstream import Upstream
from palestra.serve.responses import routes as responses
from palestra.serve.responses.store import ResponseStore


def build_api_app(
    settings: ApiSettings,
    cluster: ClusterSettings | None = None,
    controller_table: WorkerTable | None = None,
) -> FastAPI:
    """The API server; with a cluster token it calls the controller and workers with it,
    and takes it as an API key too (the web UI's) when keys are asked for. Given the
    `controller_table` of a controller in the same process, it asks that table directly."""

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.upstream = Upstream(settings.controller, cluster=cluster, local=controller_table)
        yield
        await app.state.upstream.close()

    app = FastAPI(
        title="Palestra OpenAI-compatible API", lifespan=lifespan, responses=ERROR_RESPONSES
    )
    app.state.settings = settings
    app.state.responses = ResponseStore(settings.responses_retention, settings.responses_kept)
    install_error_handlers(app)
    routers = (
        models.router, chat.router, completions.router, embeddings.router, scores.router,
        responses.router, messages.router,
    )  # fmt: skip
    for router in routers:
        app.include_router(router)

    metrics = ServingMetrics("palestra_api")

    async def refresh_queue_length() -> None:
        try:
            rows = await app.state.upstream.workers()
            metrics.queue_length.set(sum(int(row["queue_length"]) for row in rows))
        except Exception:  # a scrape must not fail because the controller is away
            metrics.queue_length.set(float("nan"))

    if settings.api_keys:
        internal = (cluster.token,) if cluster and cluster.token else ()
        app.add_middleware(RequireApiKey, keys=(*settings.api_keys, *internal))
    install_metrics(app, metrics, refresh_queue_length)  # outside the key check: 401s count
    if settings.allowed_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(settings.allowed_origins),
            allow_credentials=settings.allow_credentials,
            allow_methods=list(settings.allowed_methods),
            allow_headers=list(settings.allowed_headers),
        )

    @app.get("/health")
    async def health(request: Request) -> dict[str, Any]:
        served = await request.app.state.upstream.models()
        return {"status": "ok", "models": served}

    return app
