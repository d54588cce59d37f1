"""`palestra data`: preparing ShareGPT-style conversation files, as FastChat's data scripts
do, with a count for every record kept or dropped and why.

- `clean_sharegpt`: HTML replies (ShareGPT scrapes) to markdown, "Copy code" debris
  removed; conversations that are empty, do not alternate user/assistant, or repeat an
  earlier one are dropped.
- `split_long`: conversations longer than a token budget split at turn boundaries into
  pieces (`id_0`, `id_1`, ...), each ending on an assistant turn.
- `filter_records`: keep conversations by turn count, keywords, model field.
- `sample_records`: a seeded random sample.

Records are read in either format (ShareGPT or OpenAI messages) and written as ShareGPT,
other fields (`id`, `model`, ...) kept.
"""

from __future__ import annotations

import functools
import hashlib
import random
import re
from collections import Counter
from collections.abc import Callable
from typing import Any

from palestra.core.errors import UnsupportedError
from palestra.train.data import split_at_turns, to_messages

Record = dict[str, Any]
_ROLE_TO_SHAREGPT = {"system": "system", "user": "human", "assistant": "gpt"}
_COPY_CODE = re.compile(r"(\w+)?Copy code\s*")


def as_sharegpt(record: Record, messages: list[dict[str, str]]) -> Record:
    kept = {k: v for k, v in record.items() if k not in ("messages", "conversations")}
    kept["conversations"] = [
        {"from": _ROLE_TO_SHAREGPT[m["role"]], "value": m["content"]} for m in messages
    ]
    return kept


def _html_to_markdown(text: str) -> str:
    try:
        from markdownify import markdownify
    except ImportError as exc:
        raise UnsupportedError(
            "clean-sharegpt needs markdownify: pip install 'palestra[data]'"
        ) from exc
    if "<" not in text:
        return text
    markdown = markdownify(text, heading_style="ATX", bullets="-", code_language="")
    markdown = _COPY_CODE.sub("", markdown)  # ShareGPT's "pythonCopy code" button text
    return re.sub(r"\n{3,}", "\n\n", markdown).strip()


def clean_sharegpt(records: list[Record]) -> tuple[list[Record], Counter[str]]:
    counts: Counter[str] = Counter()
    seen: set[str] = set()
    kept: list[Record] = []
    for index, record in enumerate(records):
        try:
            messages = to_messages(record, index)
        except Exception:
            counts["dropped: unreadable"] += 1
            continue
        system = messages[:1] if messages and messages[0]["role"] == "system" else []
        turns = messages[len(system) :]
        while turns and turns[0]["role"] != "user":  # a reply with no question: skip it
            turns = turns[1:]
        if not turns or any(not t["content"].strip() for t in turns):
            counts["dropped: empty turn or conversation"] += 1
            continue
        expected = ["user", "assistant"] * (len(turns) // 2 + 1)
        if [t["role"] for t in turns] != expected[: len(turns)]:
            counts["dropped: roles do not alternate"] += 1
            continue
        turns = [
            {"role": t["role"], "content": _html_to_markdown(t["content"])}
            if t["role"] == "assistant"
            else t
            for t in turns
        ]
        if turns[-1]["role"] == "user":  # an unanswered last question teaches nothing
            turns = turns[:-1]
        if not turns:
            counts["dropped: no answered turn"] += 1
            continue
        key = hashlib.sha256(repr(system + turns).encode()).hexdigest()
        if key in seen:
            counts["dropped: duplicate"] += 1
            continue
        seen.add(key)
        kept.append(as_sharegpt(record, system + turns))
        counts["kept"] += 1
    return kept, counts


def split_long(
    records: list[Record], count_tokens: Callable[[str], int], max_tokens: int
) -> tuple[list[Record], Counter[str]]:
    """Split conversations over `max_tokens` (content tokens) at assistant turns."""

    count = functools.lru_cache(maxsize=4096)(count_tokens)  # each turn tokenised once

    def fits(part: list[dict[str, str]]) -> bool:
        return sum(count(m["content"]) + 4 for m in part) <= max_tokens  # + role markup

    counts: Counter[str] = Counter()
    out: list[Record] = []
    for index, record in enumerate(records):
        messages = to_messages(record, index)
        pieces = split_at_turns(messages, fits)
        if len(pieces) == 1:
            out.append(as_sharegpt(record, messages))
            counts["unchanged"] += 1
            continue
        base_id = str(record.get("id", index))
        for number, piece in enumerate(pieces):
            out.append({**as_sharegpt(record, piece), "id": f"{base_id}_{number}"})
        counts["split"] += 1
        counts["pieces"] += len(pieces)
    return out, counts


def filter_records(
    records: list[Record],
    *,
    min_turns: int = 1,
    max_turns: int = 0,
    exclude_keywords: tuple[str, ...] = (),
    models: tuple[str, ...] = (),
) -> tuple[list[Record], Counter[str]]:
    counts: Counter[str] = Counter()
    kept = []
    lowered = tuple(k.lower() for k in exclude_keywords)
    for index, record in enumerate(records):
        messages = to_messages(record, index)
        replies = sum(1 for m in messages if m["role"] == "assistant")
        text = " ".join(m["content"] for m in messages).lower()
        if replies < min_turns or (max_turns and replies > max_turns):
            counts["dropped: turn count"] += 1
        elif lowered and any(k in text for k in lowered):
            counts["dropped: keyword"] += 1
        elif models and record.get("model") not in models:
            counts["dropped: model"] += 1
        else:
            kept.append(as_sharegpt(record, messages))
            counts["kept"] += 1
    return kept, counts


def sample_records(records: list[Record], n: int, seed: int = 0) -> list[Record]:
    chosen = sorted(random.Random(seed).sample(range(len(records)), min(n, len(records))))
    return [as_sharegpt(records[i], to_messages(records[i], i)) for i in chosen]
