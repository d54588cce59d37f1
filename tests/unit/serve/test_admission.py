"""Admission control: a fixed number run, a bounded number wait, the rest are refused."""

from __future__ import annotations

import asyncio

import pytest

from palestra.core.errors import OverloadedError
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
