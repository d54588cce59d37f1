"""Admission control: a fixed number run, a bounded number wait, the rest are refused
with a 429 that says when to retry."""

from __future__ import annotations

import asyncio
import math

import pytest

from palestra.core.errors import OverloadedError
from palestra.serve.http_errors import error_response
from palestra.serve.worker.admission import Admission


def test_capacity_queue_and_refusal() -> None:
    async def scenario() -> None:
        admission = Admission(capacity=1, max_queue=1)
        first = await admission.acquire()
        waiting = asyncio.create_task(admission.acquire())
        await asyncio.sleep(0)
        assert (admission.running, admission.waiting, admission.queue_length) == (1, 1, 2)
        with pytest.raises(OverloadedError, match="overloaded"):
            await admission.acquire()
        first.release()
        first.release()  # idempotent
        second = await asyncio.wait_for(waiting, 1)
        assert (admission.running, admission.waiting) == (1, 0)
        second.release()
        assert admission.queue_length == 0

    asyncio.run(scenario())


def test_a_refusal_says_when_to_retry_from_how_long_requests_hold_their_place() -> None:
    async def scenario() -> None:
        admission = Admission(capacity=2, max_queue=3)
        first = await admission.acquire()
        await asyncio.sleep(0.2)
        first.release()  # the mean hold time moves from 1 s toward 0.2 s
        assert 0.2 < admission.mean_hold_s < 1.0
        held = [await admission.acquire() for _ in range(2)]
        waiting = [asyncio.create_task(admission.acquire()) for _ in range(3)]
        await asyncio.sleep(0)
        with pytest.raises(OverloadedError) as refused:
            await admission.acquire()
        # 3 waiting + this one, 2 at a time: two rounds of the mean hold time.
        assert refused.value.retry_after == pytest.approx(2 * admission.mean_hold_s)
        response = error_response(refused.value)
        assert response.status_code == 429
        assert response.headers["retry-after"] == str(math.ceil(refused.value.retry_after))
        assert response.headers["retry-after-ms"] == str(round(refused.value.retry_after * 1000))
        for ticket in held:
            ticket.release()
        for task in asyncio.as_completed(waiting):  # two at a time
            (await task).release()

    asyncio.run(scenario())
