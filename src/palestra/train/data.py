"""Reading conversation files for training: ShareGPT (`{"conversations": [{"from":
"human", "value": ...}]}`, as FastChat's dummy conversation file) and OpenAI
(`{"messages": [{"role": "user", "content": ...}]}`), as a JSON list or JSON lines, and a
seeded validation split. A malformed record is an error naming its index, never a skip."""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

from palestra.core.errors import InvalidRequestError

Conversation = list[dict[str, str]]

SHAREGPT_ROLES = {
    "system": "system",
    "human": "user",
    "user": "user",
    "gpt": "assistant",
    "assistant": "assistant",
    "chatgpt": "assistant",
    "bard": "assistant",
    "bing": "assistant",
    "model": "assistant",
}


def read_records(path: str | Path) -> list[dict[str, Any]]:
    """The records of a JSON list or JSON-lines file."""
    path = Path(path)
    if not path.is_file():
        raise InvalidRequestError(f"{path} does not exist")
    text = path.read_text(encoding="utf-8")
    try:
        data = json.loads(text)
        records = data if isinstance(data, list) else [data]
    except json.JSONDecodeError:
        records = []
        for number, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise InvalidRequestError(f"{path}:{number}: not JSON: {exc.msg}") from exc
    if not all(isinstance(r, dict) for r in records):
        raise InvalidRequestError(f"{path}: expected objects with conversations or messages")
    return records


def to_messages(record: dict[str, Any], index: int = 0) -> Conversation:
    """One record (either format) as role/content messages."""
    if "messages" in record:
        messages = []
        for turn in record["messages"]:
            role, content = turn.get("role"), turn.get("content")
            if role not in ("system", "user", "assistant") or not isinstance(content, str):
                raise InvalidRequestError(f"record {index}: bad message {turn!r}")
            messages.append({"role": role, "content": content})
        return messages
    if "conversations" in record:
        messages = []
        for turn in record["conversations"]:
            role = SHAREGPT_ROLES.get(str(turn.get("from", "")).lower())
            content = turn.get("value")
            if role is None or not isinstance(content, str):
                raise InvalidRequestError(f"record {index}: bad ShareGPT turn {turn!r}")
            messages.append({"role": role, "content": content})
        return messages
    raise InvalidRequestError(
        f"record {index}: neither 'conversations' (ShareGPT) nor 'messages' (OpenAI)"
    )


def load_conversations(path: str | Path) -> list[Conversation]:
    return [to_messages(record, i) for i, record in enumerate(read_records(path))]


def split_validation(
    conversations: list[Conversation], fraction: float, seed: int = 0
) -> tuple[list[Conversation], list[Conversation]]:
    """(train, validation): a seeded shuffle; at least one validation conversation when
    fraction > 0 and there are two or more."""
    if not 0 <= fraction < 1:
        raise InvalidRequestError("--val-fraction must be in [0, 1)")
    order = list(range(len(conversations)))
    random.Random(seed).shuffle(order)
    count = round(len(order) * fraction)
    if fraction > 0 and len(order) >= 2:
        count = max(1, count)
    held = set(order[:count])
    train = [c for i, c in enumerate(conversations) if i not in held]
    return train, [conversations[i] for i in sorted(held)]


def split_at_turns(
    conversation: Conversation, fits: Callable[[Conversation], bool]
) -> list[Conversation]:
    """Whole exchanges (a user turn and what follows it) grouped greedily into pieces that
    `fits` accepts; each piece keeps the system prompt. A single exchange that does not fit
    stays a piece of its own (the caller truncates or reports it)."""
    if fits(conversation):
        return [conversation]
    system = [m for m in conversation[:1] if m["role"] == "system"]
    exchanges: list[Conversation] = []
    for message in conversation[len(system) :]:
        if message["role"] == "user" or not exchanges:
            exchanges.append([])
        exchanges[-1].append(message)
    pieces: list[Conversation] = []
    current: Conversation = []
    for exchange in exchanges:
        if current and not fits(system + current + exchange):
            pieces.append(system + current)
            current = list(exchange)
        else:
            current = current + exchange
    if current:
        pieces.append(system + current)
    return pieces
