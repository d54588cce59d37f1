"""`ResponseStore`: the responses kept for `previous_response_id`, `GET /v1/responses/{id}`
and `item_reference` input items, in the API server's memory, for a retention time and up
to a number of responses (the oldest go first).

A stored response keeps its own turn only: its input as chat messages, its output as an
assistant message, and the id of the response it continued. A conversation is rebuilt by
walking that chain, so a long thread costs memory once, not once per turn. This module
knows nothing about HTTP."""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from palestra.core.errors import InvalidRequestError, NotFoundError


@dataclass
class StoredResponse:
    response: dict[str, Any]  # the Response object, as returned
    input_items: list[dict[str, Any]]  # this turn's input items, with ids
    messages: list[dict[str, Any]]  # this turn as chat messages: input, then the reply
    previous_id: str | None = None
    stored_at: float = field(default_factory=time.monotonic)

    @property
    def id(self) -> str:
        return str(self.response["id"])


class ResponseStore:
    def __init__(
        self,
        retention: float,
        capacity: int,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.retention = retention
        self.capacity = capacity
        self._clock = clock
        self._responses: OrderedDict[str, StoredResponse] = OrderedDict()
        self._items: dict[str, tuple[str, dict[str, Any]]] = {}  # item id -> (response, item)

    def __len__(self) -> int:
        self._expire()
        return len(self._responses)

    def put(self, stored: StoredResponse) -> None:
        if self.capacity <= 0:
            return
        stored.stored_at = self._clock()
        self._responses[stored.id] = stored
        for item in [*stored.input_items, *stored.response.get("output", [])]:
            if item.get("id"):
                self._items[item["id"]] = (stored.id, item)
        self._expire()
        while len(self._responses) > self.capacity:
            self._drop(next(iter(self._responses)))

    def get(self, response_id: str) -> StoredResponse:
        """The stored response, or a 404 that says why it may be missing."""
        self._expire()
        stored = self._responses.get(response_id)
        if stored is None:
            raise NotFoundError(
                f"no response with id {response_id!r}: {self._why_missing()}",
                param="response_id",
                code="response_not_found",
            )
        return stored

    def _why_missing(self) -> str:
        return (
            "responses made with store: false are not kept, and stored ones are kept "
            f"{self.retention:g} s (the API server's --responses-retention) and lost when it "
            "restarts"
        )

    def delete(self, response_id: str) -> None:
        self.get(response_id)
        self._drop(response_id)

    def history(self, previous_id: str) -> list[dict[str, Any]]:
        """The chat messages of every turn up to and including `previous_id`'s (its
        instructions excluded, as OpenAI does)."""
        turns: list[list[dict[str, Any]]] = []
        cursor: str | None = previous_id
        self._expire()
        while cursor is not None:
            stored = self._responses.get(cursor)
            if stored is None:
                raise InvalidRequestError(
                    f"previous response {cursor!r} is not stored: {self._why_missing()}",
                    param="previous_response_id",
                    code="previous_response_not_found",
                )
            turns.append(stored.messages)
            cursor = stored.previous_id
        return [message for turn in reversed(turns) for message in turn]

    def item(self, item_id: str) -> dict[str, Any]:
        """An input or output item of a stored response, for `item_reference`."""
        self._expire()
        found = self._items.get(item_id)
        if found is None:
            raise InvalidRequestError(
                f"item_reference {item_id!r} names no item of a stored response",
                param="input",
                code="item_not_found",
            )
        return found[1]

    def _expire(self) -> None:
        deadline = self._clock() - self.retention
        while self._responses:
            oldest = next(iter(self._responses.values()))
            if oldest.stored_at >= deadline:
                break
            self._drop(oldest.id)

    def _drop(self, response_id: str) -> None:
        stored = self._responses.pop(response_id)
        for item in [*stored.input_items, *stored.response.get("output", [])]:
            if self._items.get(item.get("id", ""), ("",))[0] == response_id:
                del self._items[item["id"]]
