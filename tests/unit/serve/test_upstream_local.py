"""The API server with its controller in the same process (`palestra serve`): it asks the
controller's table directly, with the HTTP path's answers: the least busy worker, another
worker when one is unreachable (the dead one leaves the table), and the same typed errors
for an unknown model. The worker is a loopback stand-in that streams NDJSON lines."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator

import pytest
from fastapi import FastAPI
from fastapi.responses import StreamingResponse

from palestra.core.errors import ModelNotFoundError
from palestra.serve.controller.table import WorkerTable
from palestra.serve.openai.upstream import Upstream
from tests.fakes.server import serve_in_thread
from tests.integration.cluster import free_port

LONG = "x" * 200_000  # one line longer than aiohttp's default line limit


@pytest.fixture(scope="module")
def live() -> Iterator[str]:
    app = FastAPI()
    app.get("/health")(lambda: {"status": "ok"})

    @app.post("/generate")
    def generate() -> StreamingResponse:
        lines = [{"text": "hello ", "token_ids": [1]}, {"text": LONG, "token_ids": [2]},
                 {"finish_reason": "stop", "prompt_tokens": 2, "completion_tokens": 2}]  # fmt: skip
        return StreamingResponse(json.dumps(line) + "\n" for line in lines)

    with serve_in_thread(app) as url:
        yield url


def test_a_request_goes_to_the_idle_worker_and_around_a_dead_one(live: str) -> None:
    dead = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    table = WorkerTable(expiry=30)
    table.register(dead, ["m"], capacity=4, queue_length=0)
    table.register(live, ["m"], capacity=4, queue_length=1)  # busier: the dead one comes first

    async def scenario() -> str:
        # No controller listens at this address: every answer has to come from the table.
        upstream = Upstream(f"http://127.0.0.1:{free_port()}", local=table)
        try:
            assert (await upstream.models()) == ["m"]
            stream = await upstream.generate("m", {"model": "m"})
            return "".join([chunk.text async for chunk in stream])
        finally:
            await upstream.close()

    assert asyncio.run(scenario()) == "hello " + LONG
    assert [row.address for row in table.rows()] == [live]  # the dead worker was dropped


def test_an_unknown_model_is_the_controllers_404(live: str) -> None:
    table = WorkerTable(expiry=30)
    table.register(live, ["m"], capacity=1, queue_length=0)

    async def scenario() -> None:
        upstream = Upstream(f"http://127.0.0.1:{free_port()}", local=table)
        try:
            await upstream.generate("other", {"model": "other"})
        finally:
            await upstream.close()

    with pytest.raises(ModelNotFoundError, match="served models: m"):
        asyncio.run(scenario())
