"""The API server with its controller in the same process (`palestra serve`): it asks the
controller's table directly, with the HTTP path's answers: the least busy worker, another
worker when one is unreachable (the dead one leaves the table), and the same typed errors
for an unknown model."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest

from palestra.core.errors import ModelNotFoundError
from palestra.serve.controller.table import WorkerTable
from palestra.serve.openai.upstream import Upstream

LIVE, DEAD = "http://live.worker", "http://dead.worker"


def worker(request: httpx.Request) -> httpx.Response:
    if request.url.host == "dead.worker":
        raise httpx.ConnectError("connection refused", request=request)
    lines = [{"text": "hello", "token_ids": [1]}, {"finish_reason": "stop", "prompt_tokens": 2,
             "completion_tokens": 1}]  # fmt: skip
    return httpx.Response(200, text="".join(json.dumps(line) + "\n" for line in lines))


def upstream(table: WorkerTable) -> Upstream:
    # No controller listens at this address: every answer has to come from the table.
    chosen = Upstream("http://127.0.0.1:9", local=table)
    chosen.client = httpx.AsyncClient(transport=httpx.MockTransport(worker))
    return chosen


def test_a_request_goes_to_the_idle_worker_and_around_a_dead_one() -> None:
    table = WorkerTable(expiry=30)
    table.register(DEAD, ["m"], capacity=4, queue_length=0)
    table.register(LIVE, ["m"], capacity=4, queue_length=1)  # busier: the dead one comes first

    async def scenario() -> str:
        client = upstream(table)
        assert (await client.models()) == ["m"]
        stream = await client.generate("m", {"model": "m"})
        text = "".join([chunk.text async for chunk in stream])
        await client.close()
        return text

    assert asyncio.run(scenario()) == "hello"
    assert [row.address for row in table.rows()] == [LIVE]  # the dead worker was dropped


def test_an_unknown_model_is_the_controllers_404() -> None:
    table = WorkerTable(expiry=30)
    table.register(LIVE, ["m"], capacity=1, queue_length=0)

    async def scenario() -> None:
        client = upstream(table)
        try:
            await client.generate("other", {"model": "other"})
        finally:
            await client.close()

    with pytest.raises(ModelNotFoundError, match="served models: m"):
        asyncio.run(scenario())
