"""`ArenaStore`: every conversation turn and every vote, stored durably through SQLAlchemy
(SQLite by default; a PostgreSQL URL works the same).

One table of events mirrors FastChat's conversation log, one row per line: `chat` (a model
answered: its conversation state, sampling parameters, start and finish times) and votes
(`upvote`, `downvote`, `flag` on one model; `leftvote`, `rightvote`, `tievote`,
`bothbad_vote` on a battle, with both conversation states and the names the user saw, ""
when anonymous). Export and import speak that JSONL format, so existing arena datasets and
tools interoperate, and the ratings read battles from the store the same way.

Durability: each event is its own committed transaction before `record` returns, and the
UI acknowledges a vote only after that; SQLite runs in WAL mode with synchronous=FULL, so
a vote that was acknowledged survives a kill -9 or a power cut. Several processes may write
to one SQLite file (busy timeout).

Users are stored only as a salted hash of their address (no raw IP): the salt comes from
`PALESTRA_USER_SALT` when set, else a random one made with the store and kept in it.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from palestra.arena.battles import BATTLE_VOTES, MODEL_VOTES, Battle, battle_from_vote
from palestra.core.errors import InvalidRequestError
from palestra.core.jsonl import read_jsonl

SCHEMA_VERSION = 1
CHAT = "chat"
EVENT_TYPES = (CHAT, *MODEL_VOTES, *BATTLE_VOTES, "share")


@dataclass
class ArenaEvent:
    """One line of the arena log."""

    type: str
    user: str  # a salted hash, never an address
    models: list[str]  # the models behind the states (one, or two for a battle)
    states: list[dict[str, Any]]  # conversation states, FastChat's shape
    shown: list[str] = field(default_factory=list)  # names the user saw; "" if anonymous
    tstamp: float = field(default_factory=time.time)
    gen_params: dict[str, Any] = field(default_factory=dict)
    start: float | None = None
    finish: float | None = None
    battle_id: str = ""
    flags: dict[str, Any] = field(default_factory=dict)  # identity leaks, moderation...
    id: int | None = None

    def __post_init__(self) -> None:
        if self.type not in EVENT_TYPES:
            raise InvalidRequestError(
                f"unknown arena event type {self.type!r}; expected one of {', '.join(EVENT_TYPES)}"
            )

    def to_log_record(self) -> dict[str, Any]:
        """The event as a line of FastChat's conversation log (`ip` carries the hash)."""
        record: dict[str, Any] = {"tstamp": self.tstamp, "type": self.type}
        if self.type == CHAT:
            record.update(
                model=self.models[0],
                gen_params=self.gen_params,
                start=self.start,
                finish=self.finish,
                state=self.states[0],
            )
        elif len(self.states) == 2:
            record.update(models=self.shown or ["", ""], states=self.states)
        else:
            record.update(model=self.models[0], state=self.states[0])
        record["ip"] = self.user
        if self.battle_id:
            record["battle_id"] = self.battle_id
        if self.flags:
            record["flags"] = self.flags
        return record


def _schema() -> Any:
    from sqlalchemy import JSON, Column, Float, Integer, MetaData, String, Table

    metadata = MetaData()
    meta = Table(
        "palestra_meta",
        metadata,
        Column("key", String(64), primary_key=True),
        Column("value", String(256), nullable=False),
    )
    events = Table(
        "arena_events",
        metadata,
        Column("id", Integer, primary_key=True, autoincrement=True),
        Column("tstamp", Float, nullable=False, index=True),
        Column("type", String(32), nullable=False, index=True),
        Column("user", String(64), nullable=False, index=True),
        Column("models", JSON, nullable=False),
        Column("shown", JSON, nullable=False),
        Column("states", JSON, nullable=False),
        Column("gen_params", JSON, nullable=False),
        Column("start", Float),
        Column("finish", Float),
        Column("battle_id", String(64), nullable=False, index=True),
        Column("flags", JSON, nullable=False),
    )
    return metadata, meta, events


def store_url(location: str | Path) -> str:
    """A SQLAlchemy URL from a URL or a file path."""
    text = str(location)
    return text if "://" in text else f"sqlite:///{Path(text).expanduser().resolve()}"


class ArenaStore:
    def __init__(self, location: str | Path):
        from sqlalchemy import create_engine, event

        self.url = store_url(location)
        if self.url.startswith("sqlite:///"):
            Path(self.url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        self.engine = create_engine(self.url, connect_args=self._connect_args())
        if self.engine.dialect.name == "sqlite":
            event.listen(self.engine, "connect", _sqlite_pragmas)
        self.metadata, self.meta, self.events = _schema()
        self.metadata.create_all(self.engine)
        self._salt = os.environ.get("PALESTRA_USER_SALT") or self._prepare()

    def _prepare(self) -> str:
        """Check (or write) the schema version; the store's user salt."""
        from sqlalchemy import select
        from sqlalchemy.exc import IntegrityError

        try:
            with self.engine.begin() as connection:
                rows = dict(connection.execute(select(self.meta.c.key, self.meta.c.value)).all())
                if "schema_version" not in rows:
                    rows = {
                        "schema_version": str(SCHEMA_VERSION),
                        "user_salt": secrets.token_hex(16),
                    }
                    connection.execute(
                        self.meta.insert(), [{"key": k, "value": v} for k, v in rows.items()]
                    )
        except IntegrityError:  # another process created the store at the same moment
            return self._prepare()
        if int(rows["schema_version"]) > SCHEMA_VERSION:
            raise InvalidRequestError(
                f"store {self.url} has schema version {rows['schema_version']}; this "
                f"Palestra reads up to {SCHEMA_VERSION}: upgrade Palestra"
            )
        return rows["user_salt"]

    def _connect_args(self) -> dict[str, Any]:
        if self.url.startswith("sqlite"):
            return {"timeout": 30, "check_same_thread": False}
        return {}

    def hash_user(self, address: str) -> str:
        digest = hashlib.sha256(f"{self._salt}:{address}".encode()).hexdigest()
        return "user_" + digest[:20]

    # ---------------------------------------------------------------- writing
    def _row(self, event: ArenaEvent) -> dict[str, Any]:
        return {
            "tstamp": event.tstamp,
            "type": event.type,
            "user": event.user,
            "models": event.models,
            "shown": event.shown,
            "states": event.states,
            "gen_params": event.gen_params,
            "start": event.start,
            "finish": event.finish,
            "battle_id": event.battle_id,
            "flags": event.flags,
        }

    def record(self, event: ArenaEvent) -> int:
        """Store one event; returns only once it is committed to disk."""
        with self.engine.begin() as connection:
            result = connection.execute(self.events.insert(), self._row(event))
        key = result.inserted_primary_key
        event.id = int(key[0]) if key else -1
        return event.id

    def record_many(self, events: Iterable[ArenaEvent]) -> int:
        rows = [self._row(e) for e in events]
        if rows:
            with self.engine.begin() as connection:
                connection.execute(self.events.insert(), rows)
        return len(rows)

    # ---------------------------------------------------------------- reading
    def events_of(self, *types: str, since: float | None = None) -> Iterator[ArenaEvent]:
        from sqlalchemy import select

        query = select(self.events).order_by(self.events.c.id)
        if types:
            query = query.where(self.events.c.type.in_(types))
        if since is not None:
            query = query.where(self.events.c.tstamp >= since)
        with self.engine.connect() as connection:
            for row in connection.execute(query).mappings():
                yield ArenaEvent(
                    type=row["type"],
                    user=row["user"],
                    models=list(row["models"]),
                    states=list(row["states"]),
                    shown=list(row["shown"]),
                    tstamp=row["tstamp"],
                    gen_params=dict(row["gen_params"]),
                    start=row["start"],
                    finish=row["finish"],
                    battle_id=row["battle_id"],
                    flags=dict(row["flags"]),
                    id=row["id"],
                )

    def count(self, *types: str) -> int:
        from sqlalchemy import func, select

        query = select(func.count()).select_from(self.events)
        if types:
            query = query.where(self.events.c.type.in_(types))
        with self.engine.connect() as connection:
            return int(connection.execute(query).scalar_one())

    def battles(self) -> list[Battle]:
        """Every battle vote as a battle (names from the states, flags kept for cleaning)."""
        battles = []
        for event in self.events_of(*BATTLE_VOTES):
            battle = battle_from_vote(
                event.type,
                event.states,
                event.shown or ["", ""],
                judge=event.user,
                tstamp=event.tstamp,
                extra=event.flags,
            )
            if battle is not None:
                battles.append(battle)
        return battles

    def close(self) -> None:
        self.engine.dispose()

    # ---------------------------------------------------------------- interchange
    def export_jsonl(self, path: Path, since: float | None = None) -> int:
        count = 0
        with path.open("w", encoding="utf-8") as handle:
            for event in self.events_of(since=since):
                handle.write(json.dumps(event.to_log_record(), ensure_ascii=False) + "\n")
                count += 1
        return count

    def import_jsonl(self, path: Path) -> tuple[int, int]:
        """(imported, skipped) from FastChat conversation logs; addresses are hashed."""
        events, skipped = [], 0
        for _, record in read_jsonl(path):
            event = self._event_from_log(record)
            if event is None:
                skipped += 1
            else:
                events.append(event)
        return self.record_many(events), skipped

    def _event_from_log(self, record: dict[str, Any]) -> ArenaEvent | None:
        kind = record.get("type")
        if kind not in EVENT_TYPES:
            return None
        address = str(record.get("ip") or "")
        user = address if address.startswith("user_") else self.hash_user(address)
        common = {
            "type": kind,
            "user": user,
            "tstamp": float(record.get("tstamp") or 0.0),
            "battle_id": str(record.get("battle_id") or ""),
            "flags": dict(record.get("flags") or {}),
        }
        if "states" in record and len(record["states"]) == 2:
            states = list(record["states"])
            names = [str(s.get("model_name", "")) for s in states]
            shown = [str(n) for n in (record.get("models") or ["", ""])]
            return ArenaEvent(models=names, states=states, shown=shown, **common)
        state = record.get("state")
        if not isinstance(state, dict):
            return None
        model = str(record.get("model") or state.get("model_name", ""))
        return ArenaEvent(
            models=[model],
            states=[state],
            shown=[model],
            gen_params=dict(record.get("gen_params") or {}),
            start=record.get("start"),
            finish=record.get("finish"),
            **common,
        )


def _sqlite_pragmas(connection: Any, _record: Any) -> None:
    cursor = connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()
