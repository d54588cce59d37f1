"""The controller's worker table: registration, heartbeats, expiry and dispatch policies."""

from __future__ import annotations

import time
from collections import Counter

import pytest

from palestra.core.errors import ModelNotFoundError, NoWorkerError
from palestra.serve.controller.table import WorkerTable


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
