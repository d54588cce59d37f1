"""`JudgmentCache`: every judge reply ever received, keyed by what was asked, in SQLite.

The key is a hash of the judge's name, the messages, the sampling settings and the attempt
number, so asking the same thing again (a re-run, an overlapping mode, another model list)
replays the stored reply instead of paying for it, and the sequence of retries after a
malformed reply replays the same way.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import time
from collections.abc import Sequence
from pathlib import Path

from palestra.core.types import Message
from palestra.judge.client import Completion

SCHEMA = """
CREATE TABLE IF NOT EXISTS judgments (
    key TEXT PRIMARY KEY,
    judge TEXT NOT NULL,
    text TEXT NOT NULL,
    prompt_tokens INTEGER NOT NULL,
    completion_tokens INTEGER NOT NULL,
    tstamp REAL NOT NULL
)
"""


def cache_key(
    judge: str, messages: Sequence[Message], temperature: float, max_tokens: int, attempt: int
) -> str:
    payload = json.dumps(
        [judge, [m.to_dict() for m in messages], temperature, max_tokens, attempt],
        ensure_ascii=False,
    )
    return hashlib.sha256(payload.encode()).hexdigest()


class JudgmentCache:
    def __init__(self, path: Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.db = sqlite3.connect(path)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute(SCHEMA)
        self.db.commit()

    def get(self, key: str) -> Completion | None:
        row = self.db.execute(
            "SELECT text, prompt_tokens, completion_tokens FROM judgments WHERE key = ?", (key,)
        ).fetchone()
        return Completion(row[0], row[1], row[2], "stop") if row else None

    def put(self, key: str, judge: str, completion: Completion) -> None:
        self.db.execute(
            "INSERT OR REPLACE INTO judgments VALUES (?, ?, ?, ?, ?, ?)",
            (
                key,
                judge,
                completion.text,
                completion.prompt_tokens,
                completion.completion_tokens,
                time.time(),
            ),
        )
        self.db.commit()

    def __len__(self) -> int:
        return int(self.db.execute("SELECT COUNT(*) FROM judgments").fetchone()[0])

    def close(self) -> None:
        self.db.close()
