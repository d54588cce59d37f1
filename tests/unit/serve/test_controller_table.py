"""The controller's worker table: registration, heartbeats, expiry and dispatch policies."""

from __future__ import annotations

import time
from collections import Counter

import pytest

from palestra.core.errors import ModelNotFoundError, NoWorkerError
from palestra.serve.controller import table as table_module
from palestra.serve.controller.table import RETRY_AFTER_S, WORKER_LEFT, WorkerTable


def test_shortest_queue_relative_to_capacity() -> None:
    table = WorkerTable(expiry=30)
    table.register("http://a", ["m"], capacity=1, queue_length=1)
    table.register("http://b", ["m"], capacity=4, queue_length=2)
    assert table.pick("m") == "http://b"  # 2/4 < 1/1
    assert table.pick("m") == "http://b"  # 3/4 < 1/1
    assert table.pick("m") == "http://a"  # optimistic increments: 4/4 vs 1/1, a sorts first


def test_lottery_is_weighted_by_capacity() -> None:
    table = WorkerTable(expiry=30, policy="lottery", seed=0)
    table.register("http://a", ["m"], capacity=1, queue_length=0)
    table.register("http://b", ["m"], capacity=3, queue_length=0)
    picks = Counter(table.pick("m") for _ in range(4000))
    assert 0.70 < picks["http://b"] / 4000 < 0.80


def test_unknown_model_vs_no_live_worker() -> None:
    table = WorkerTable(expiry=30)
    table.register("http://a", ["m"], capacity=1, queue_length=0)
    with pytest.raises(ModelNotFoundError, match="served models: m"):
        table.pick("other")
    with pytest.raises(NoWorkerError):
        table.pick("m", exclude=["http://a"])


def test_heartbeats_and_expiry() -> None:
    table = WorkerTable(expiry=0.2)
    assert table.heartbeat("http://a", 0) is False  # unknown: the worker must register
    table.register("http://a", ["m"], capacity=1, queue_length=0)
    table.register("http://b", ["m"], capacity=1, queue_length=0)
    time.sleep(0.25)
    assert table.heartbeat("http://a", 3) is True
    assert table.expire() == ["http://b"]
    assert [(r.address, r.queue_length) for r in table.rows()] == [("http://a", 3)]


def test_a_model_whose_last_worker_left_is_to_be_retried_not_unknown(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A crashed worker is usually coming back: until it does (or `RETURNING_S` passes),
    its model answers 503 with a time to retry after, not 404."""
    table = WorkerTable(expiry=0.2)
    table.register("http://a", ["m", "n"], capacity=1, queue_length=0)
    table.register("http://b", ["n"], capacity=1, queue_length=0)
    assert table.drop("http://a")  # a request to it failed
    with pytest.raises(NoWorkerError, match="its last one left 0 s ago") as left:
        table.pick("m")
    assert (left.value.code, left.value.retry_after) == (WORKER_LEFT, RETRY_AFTER_S)
    assert table.pick("n") == "http://b"  # still served by another
    table.register("http://a", ["m"], capacity=1, queue_length=0)  # back
    assert table.pick("m") == "http://a"
    time.sleep(0.25)
    assert sorted(table.expire()) == ["http://a", "http://b"]  # heartbeats stopped
    with pytest.raises(NoWorkerError, match="may be restarting"):
        table.pick("n")
    monkeypatch.setattr(table_module, "RETURNING_S", 0.0)  # nobody came back in time
    with pytest.raises(ModelNotFoundError, match="served models: none"):
        table.pick("m")
