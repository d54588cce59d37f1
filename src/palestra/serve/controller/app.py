"""`build_controller_app`: the controller's HTTP API.

POST /workers/register, /workers/heartbeat, /workers/drop    (workers, API servers)
GET  /workers (the table), /models, /health
POST /dispatch  {model, exclude} -> {address}   (404 unknown model, 503 none live)

With a cluster token (`serve/cluster.py`) every route but /health needs it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from fastapi import FastAPI

from palestra.serve.cluster import ClusterSettings, RequireClusterToken
from palestra.serve.controller.settings import ControllerSettings
from palestra.serve.controller.table import WorkerTable
from palestra.serve.http_errors import ERROR_RESPONSES, install_error_handlers
from palestra.serve.wire import (
    DispatchRequest,
    DispatchResponse,
    HeartbeatRequest,
    HeartbeatResponse,
    ModelList,
    RegisterRequest,
    WorkerRow,
)

logger = logging.getLogger(__name__)


def build_controller_app(
    settings: ControllerSettings, cluster: ClusterSettings | None = None
) -> FastAPI:
    """The controller; with a cluster token, only its holders may register or dispatch."""
    table = WorkerTable(settings.expiry, settings.policy)

    async def expire_forever() -> None:
        while True:
            await asyncio.sleep(max(0.2, settings.expiry / 4))
            for address in table.expire():
                logger.warning("dropped %s: no heartbeat for %.0f s", address, settings.expiry)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        task = asyncio.create_task(expire_forever())
        yield
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    app = FastAPI(title="Palestra controller", lifespan=lifespan, responses=ERROR_RESPONSES)
    app.state.table = table
    install_error_handlers(app)
    if cluster is not None and cluster.token:
        app.add_middleware(RequireClusterToken, token=cluster.token)

    @app.post("/workers/register")
    async def register(body: RegisterRequest) -> dict[str, bool]:
        table.register(
            body.address, body.models, body.capacity, body.queue_length, body.vision_models
        )
        logger.info("worker %s registered: %s", body.address, ", ".join(body.models))
        return {"ok": True}

    @app.post("/workers/heartbeat")
    async def heartbeat(body: HeartbeatRequest) -> HeartbeatResponse:
        return HeartbeatResponse(known=table.heartbeat(body.address, body.queue_length))

    @app.post("/workers/drop")
    async def drop(body: HeartbeatRequest) -> dict[str, bool]:
        dropped = table.drop(body.address)
        if dropped:
            logger.warning("worker %s dropped after a failed request", body.address)
        return {"dropped": dropped}

    @app.get("/workers")
    async def workers() -> list[WorkerRow]:
        return table.rows()

    @app.get("/models")
    async def models() -> ModelList:
        return ModelList(models=table.models(), vision_models=table.vision_models())

    @app.post("/dispatch")
    async def dispatch(body: DispatchRequest) -> DispatchResponse:
        return DispatchResponse(address=table.pick(body.model, body.exclude))

    @app.get("/health")
    async def health() -> dict[str, object]:
        return {"status": "ok", "workers": len(table.rows()), "models": table.models()}

    return app
