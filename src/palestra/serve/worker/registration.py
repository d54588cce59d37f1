"""Keeping a worker in its controller's table: register (retrying until the controller is
up), heartbeat with the queue length, and register again whenever the controller answers
that it does not know this worker (it restarted)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

import httpx

from palestra.serve.wire import HeartbeatRequest, HeartbeatResponse, RegisterRequest

logger = logging.getLogger(__name__)


async def keep_registered(
    controller: str,
    registration: Callable[[], RegisterRequest],
    *,
    heartbeat_interval: float,
    retry_interval: float = 1.0,
    client_options: dict[str, Any] | None = None,
) -> None:
    """`client_options`: the cluster's token header and CA (`ClusterSettings`)."""
    registered = False
    refused = False
    options = client_options or {}
    async with httpx.AsyncClient(base_url=controller, timeout=5.0, **options) as client:
        while True:
            try:
                if not registered:
                    body = registration()
                    response = await client.post("/workers/register", json=body.model_dump())
                    if response.status_code == 401 and not refused:
                        refused = True  # said once; it keeps trying (the token may change)
                        logger.error(
                            "controller %s refused this worker: %s", controller, response.text
                        )
                    response.raise_for_status()
                    registered = True
                    logger.info("registered %s with %s", body.address, controller)
                else:
                    body = registration()
                    beat = HeartbeatRequest(address=body.address, queue_length=body.queue_length)
                    response = await client.post("/workers/heartbeat", json=beat.model_dump())
                    response.raise_for_status()
                    if not HeartbeatResponse.model_validate(response.json()).known:
                        registered = False  # the controller restarted: register at once
                        continue
            except (httpx.HTTPError, ValueError) as exc:
                if registered:
                    logger.warning(
                        "controller %s unreachable (%s); will re-register", controller, exc
                    )
                registered = False
            await asyncio.sleep(heartbeat_interval if registered else retry_interval)
