"""The Responses API's store: a conversation rebuilt from a chain of turns, retention by
time and by count, references to stored items, and errors that say why a response is
missing."""

from __future__ import annotations

import pytest

from palestra.core.errors import InvalidRequestError, NotFoundError
from palestra.serve.responses.store import ResponseStore, StoredResponse


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def turn(number: int, previous: str | None = None) -> StoredResponse:
    question = {"role": "user", "content": f"question {number}"}
    answer = {"role": "assistant", "content": f"answer {number}"}
    output = [{"id": f"msg_out{number}", "type": "message", "role": "assistant",
               "content": [{"type": "output_text", "text": f"answer {number}"}]}]  # fmt: skip
    return StoredResponse(
        {"id": f"resp_{number}", "output": output},
        [{"id": f"msg_in{number}", "type": "message", "role": "user", "content": "q"}],
        [question, answer],
        previous,
    )


def test_a_chain_of_turns_is_one_conversation() -> None:
    store = ResponseStore(retention=60, capacity=10)
    store.put(turn(1))
    store.put(turn(2, "resp_1"))
    store.put(turn(3, "resp_2"))
    history = store.history("resp_3")
    assert [m["content"] for m in history] == [
        "question 1", "answer 1", "question 2", "answer 2", "question 3", "answer 3"
    ]  # fmt: skip
    assert store.item("msg_out2")["content"][0]["text"] == "answer 2"
    assert store.item("msg_in3")["role"] == "user"


def test_retention_by_time_and_by_count() -> None:
    clock = Clock()
    store = ResponseStore(retention=60, capacity=2, clock=clock)
    store.put(turn(1))
    clock.now = 30
    store.put(turn(2, "resp_1"))
    store.put(turn(3, "resp_2"))  # over capacity: the oldest goes
    assert len(store) == 2
    with pytest.raises(NotFoundError, match="kept 60 s"):
        store.get("resp_1")
    with pytest.raises(InvalidRequestError, match="previous response 'resp_1' is not stored"):
        store.history("resp_3")  # the chain is broken where it was evicted
    with pytest.raises(InvalidRequestError, match="item_reference 'msg_out1'"):
        store.item("msg_out1")
    clock.now = 91  # 61 s after the last two were stored
    assert len(store) == 0
    with pytest.raises(NotFoundError):
        store.get("resp_3")


def test_deleting_and_a_store_that_keeps_nothing() -> None:
    store = ResponseStore(retention=60, capacity=10)
    store.put(turn(1))
    store.delete("resp_1")
    with pytest.raises(NotFoundError):
        store.delete("resp_1")
    with pytest.raises(InvalidRequestError):
        store.item("msg_in1")
    none = ResponseStore(retention=60, capacity=0)
    none.put(turn(1))
    assert len(none) == 0
