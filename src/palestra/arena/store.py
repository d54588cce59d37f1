"""`ArenaStore`: every conversation turn and every vote, stored durably through SQLAlchemy
(a SQLite file by default, or a PostgreSQL URL with `palestra[postgres]`), and the
per-user limits web servers share. The schema is Alembic's (`arena/migrate.py`): opening a
store brings it up to date.

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
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from palestra.arena.battles import BATTLE_VOTES, MODEL_VOTES, Battle, battle_from_vote
from palestra.core.errors import InvalidRequestError
from palestra.core.jsonl import read_jsonl

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

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

    def battle(self) -> Battle | None:
        """The battle a battle vote is about (names from the states, flags kept for
        cleaning); None for other events."""
        return battle_from_vote(
            self.type, self.states, self.shown or ["", ""], judge=self.user,
            tstamp=self.tstamp, extra=self.flags,
        )  # fmt: skip

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


# The facts `battle_facts` reads, in the order it unpacks them (then the style columns).
FACT_COLUMNS = (
    "event_id",
    "model_a",
    "model_b",
    "winner",
    "judge",
    "turn",
    "anony",
    "language",
    "tstamp",
    "dedup_key",
    "identity_leak",
    "errored",
    "categories",
)
STYLE_COLUMNS = tuple(
    f"style_{side}_{feature}" for side in "ab" for feature in ("length", "headers", "lists", "bold")
)


def _tables() -> Any:
    """The store's tables as the code reads and writes them; the schema itself is made and
    changed by the migrations (`arena/migrations/`), and a test checks the two agree."""
    from sqlalchemy import JSON, Boolean, Column, Float, Index, Integer, MetaData, String, Table

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
    limits = Table(
        "arena_limits",
        metadata,
        Column("id", Integer, primary_key=True, autoincrement=True),
        Column("kind", String(16), nullable=False),
        Column("user", String(64), nullable=False),
        Column("tstamp", Float, nullable=False, index=True),
        Index("ix_arena_limits_kind_user_tstamp", "kind", "user", "tstamp"),
    )
    battles = Table(
        "arena_battles",
        metadata,
        Column("event_id", Integer, primary_key=True, autoincrement=False),
        Column("tstamp", Float, nullable=False),
        Column("judge", String(64), nullable=False),
        Column("model_a", String(256), nullable=False),
        Column("model_b", String(256), nullable=False),
        Column("winner", String(16), nullable=False),
        Column("anony", Boolean, nullable=False),
        Column("turn", Integer, nullable=False),
        Column("language", String(32), nullable=False),
        Column("dedup_key", String(40), nullable=False),
        Column("identity_leak", Boolean, nullable=False),
        Column("errored", Boolean, nullable=False),
        *(Column(name, Float) for name in STYLE_COLUMNS),
        Column("categories", String(512), nullable=False),
    )
    return metadata, meta, events, limits, battles


def store_url(location: str | Path) -> str:
    """A SQLAlchemy URL from a URL or a file path; PostgreSQL URLs without a driver use
    psycopg 3 (`palestra[postgres]`)."""
    text = str(location)
    if "://" not in text:
        return f"sqlite:///{Path(text).expanduser().resolve()}"
    for plain in ("postgresql://", "postgres://"):
        if text.startswith(plain):
            return "postgresql+psycopg://" + text.removeprefix(plain)
    return text


def open_engine(location: str | Path) -> Engine:
    """A SQLAlchemy engine on the store (a missing driver: one line that names the extra)."""
    from sqlalchemy import create_engine, event

    url = store_url(location)
    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    connect_args = {"timeout": 30, "check_same_thread": False} if url.startswith("sqlite") else {}
    try:
        engine = create_engine(url, connect_args=connect_args, pool_pre_ping=True)
    except ModuleNotFoundError as exc:
        extra = " (pip install 'palestra[postgres]')" if "psycopg" in str(exc) else ""
        raise InvalidRequestError(
            f"arena store {location}: its database driver is not installed: {exc}{extra}"
        ) from None
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    return engine


@contextmanager
def database_errors(engine: Engine) -> Iterator[None]:
    """A database that cannot be reached or read becomes one line that names it."""
    from sqlalchemy.exc import OperationalError

    try:
        yield
    except OperationalError as exc:
        reason = str(exc.orig or exc).strip().splitlines()[0]
        shown = engine.url.render_as_string(hide_password=True)
        raise InvalidRequestError(f"cannot open arena store {shown}: {reason}") from None


class ArenaStore:
    def __init__(self, location: str | Path, salt: str | None = None):
        """`salt` hashes user addresses; without it, PALESTRA_USER_SALT, else one kept in
        the store (`salt_source` says which)."""
        from palestra.arena.migrate import ensure_current

        self.url = store_url(location)
        self.engine = open_engine(location)
        self.metadata, self.meta, self.events, self.limits, self.facts = _tables()
        with database_errors(self.engine):
            ensure_current(self.engine)
            given = salt or os.environ.get("PALESTRA_USER_SALT")
            self.salt_source = "given" if salt else "environment" if given else "store"
            self._salt = given or self._prepare()
            self._fill_missing_facts()
        self._limit_calls = 0

    def _prepare(self) -> str:
        """The store's user salt (written on first use)."""
        from sqlalchemy import select
        from sqlalchemy.exc import IntegrityError

        query = select(self.meta.c.value).where(self.meta.c.key == "user_salt")
        with self.engine.begin() as connection:
            salt = connection.execute(query).scalar_one_or_none()
            if salt is not None:
                return str(salt)
        try:
            salt = secrets.token_hex(16)
            with self.engine.begin() as connection:
                connection.execute(self.meta.insert(), {"key": "user_salt", "value": salt})
        except IntegrityError:  # another process wrote it at the same moment
            return self._prepare()
        return salt

    def stored_salt(self) -> str | None:
        """The salt kept in the store itself (None once it was moved out)."""
        from sqlalchemy import select

        query = select(self.meta.c.value).where(self.meta.c.key == "user_salt")
        with self.engine.connect() as connection:
            salt = connection.execute(query).scalar_one_or_none()
        return None if salt is None else str(salt)

    def forget_salt(self) -> None:
        """Delete the store's own salt (after it was copied out: `palestra arena salt`)."""
        with self.engine.begin() as connection:
            connection.execute(self.meta.delete().where(self.meta.c.key == "user_salt"))

    def derived_secret(self, purpose: str) -> str:
        """A secret for `purpose` derived from the user salt: the same for every server on
        this store and across restarts, never the salt itself."""
        return hashlib.sha256(f"{self._salt}:{purpose}".encode()).hexdigest()[:32]

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
        """Store one event (with its battle facts, for a battle vote, in the same
        transaction); returns only once it is committed to disk."""
        with self.engine.begin() as connection:
            result = connection.execute(self.events.insert(), self._row(event))
            key = result.inserted_primary_key
            event.id = int(key[0]) if key else -1
            facts = _facts(event, event.id)
            if facts is not None:
                connection.execute(self.facts.insert(), facts)
        return event.id

    def record_many(self, events: Iterable[ArenaEvent]) -> int:
        """Store many events in one transaction."""
        events = list(events)
        if events:
            with self.engine.begin() as connection:
                inserted = connection.execute(
                    self.events.insert().returning(self.events.c.id, sort_by_parameter_order=True),
                    [self._row(e) for e in events],
                )
                ids = [int(key) for key in inserted.scalars()]
                for event, event_id in zip(events, ids, strict=True):
                    event.id = event_id
                facts = [f for e, i in zip(events, ids, strict=True) if (f := _facts(e, i))]
                if facts:
                    connection.execute(self.facts.insert(), facts)
        return len(events)

    def _fill_missing_facts(self) -> None:
        """Facts for battle votes stored before the facts table existed (or by an older
        Palestra), in batches; once done, a check of two numbers."""
        from sqlalchemy import func, select

        with self.engine.connect() as connection:
            last_fact = connection.execute(select(func.max(self.facts.c.event_id))).scalar()
            last_vote = connection.execute(
                select(func.max(self.events.c.id)).where(self.events.c.type.in_(list(BATTLE_VOTES)))
            ).scalar()
            if last_vote is None or (last_fact is not None and last_fact >= last_vote):
                return
            have = set(connection.execute(select(self.facts.c.event_id)).scalars())
        missing = [e for e in self.events_of(*BATTLE_VOTES) if e.id not in have]
        for start in range(0, len(missing), 1000):
            batch = missing[start : start + 1000]
            rows = [f for e in batch if e.id is not None and (f := _facts(e, e.id))]
            if rows:
                with self.engine.begin() as connection:
                    connection.execute(self.facts.insert(), rows)

    # ---------------------------------------------------------------- limits
    def allowance(
        self, kind: str, user: str, limit: int, window: float, now: float | None = None
    ) -> float:
        """0 when `user` may do one more `kind` (a message, a vote) within `limit` per
        `window` seconds, and it is counted; else the seconds to wait.

        Kept in the store, so the limit holds across web server processes. Each attempt
        is inserted first, then ranked among the user's attempts in the window by id: the
        first `limit` pass and the rest are taken back. Ids must follow commit order for
        that: SQLite's single writer gives it, on PostgreSQL a per-user advisory lock does.
        Racing attempts can at worst both be refused; never more than `limit` pass."""
        from sqlalchemy import delete, select, text

        now = time.time() if now is None else now
        table = self.limits
        mine = (table.c.kind == kind) & (table.c.user == user)
        with self.engine.begin() as connection:
            if self.engine.dialect.name == "postgresql":  # ids in commit order per user
                key = int.from_bytes(
                    hashlib.sha256(f"{kind}:{user}".encode()).digest()[:8], "big", signed=True
                )
                connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": key})
            connection.execute(delete(table).where(mine & (table.c.tstamp <= now - window)))
            inserted = connection.execute(
                table.insert(), {"kind": kind, "user": user, "tstamp": now}
            ).inserted_primary_key
        assert inserted is not None
        attempt = int(inserted[0])
        recent = select(table.c.tstamp).where(
            mine & (table.c.tstamp > now - window) & (table.c.id <= attempt)
        )
        with self.engine.connect() as connection:
            stamps = sorted(connection.execute(recent).scalars())
        self._limit_calls += 1
        if len(stamps) <= limit:
            if self._limit_calls % 1024 == 0:  # users who never came back
                with self.engine.begin() as connection:
                    stale = (table.c.kind == kind) & (table.c.tstamp <= now - window)
                    connection.execute(delete(table).where(stale))
            return 0.0
        with self.engine.begin() as connection:
            connection.execute(delete(table).where(table.c.id == attempt))
        return max(stamps[0] + window - now, 0.001)

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

    def battle_facts(self, after: int = 0) -> tuple[list[Battle], int]:
        """The battles voted after event id `after`, from their facts: no conversation
        texts, the cleaning's verdicts and style counts in `extra` (what the leaderboard
        needs); and the last event id read, to ask for the next ones."""
        from sqlalchemy import select

        table = self.facts
        columns = [table.c[name] for name in (*FACT_COLUMNS, *STYLE_COLUMNS)]
        query = select(*columns).where(table.c.event_id > after).order_by(table.c.event_id)
        with self.engine.connect() as connection:
            rows = connection.execute(query).all()  # all at once: 3x faster than row by row
        battles = []
        for (_, model_a, model_b, winner, judge, turn, anony, language, tstamp, dedup,
             leak, errored, categories, *style) in rows:  # fmt: skip
            battles.append(
                Battle(
                    model_a, model_b, winner, judge, turn, bool(anony), language, tstamp,
                    extra={
                        "dedup_key": dedup,
                        "identity_leak": bool(leak),
                        "errored": bool(errored),
                        "style": None if style[0] is None else (style[:4], style[4:]),
                        "categories": categories.split(",") if categories else [],
                    },
                )
            )  # fmt: skip
        last = int(rows[-1][0]) if rows else after
        return battles, last

    def battles(self) -> list[Battle]:
        """Every battle vote as a battle (names from the states, flags kept for cleaning)."""
        return [b for e in self.events_of(*BATTLE_VOTES) if (b := e.battle()) is not None]

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


def _facts(event: ArenaEvent, event_id: int) -> dict[str, Any] | None:
    """The row of facts of a battle vote stored as `event_id` (None for other events)."""
    from palestra.arena.categories import LANGUAGES, label
    from palestra.arena.cleaning import battle_verdicts
    from palestra.arena.ratings.style import battle_style

    battle = event.battle()
    if battle is None:
        return None
    style = battle_style(battle)
    categories = [*label(battle), *(event.flags.get("categories") or [])]
    return {
        "event_id": event_id,
        "tstamp": battle.tstamp,
        "judge": battle.judge,
        "model_a": battle.model_a,
        "model_b": battle.model_b,
        "winner": battle.winner,
        "anony": battle.anony,
        "turn": battle.turn,
        "language": next((c for c in categories if c in LANGUAGES), ""),
        **battle_verdicts(battle),
        **dict(
            zip(STYLE_COLUMNS, [None] * 8 if style is None else [*style[0], *style[1]], strict=True)
        ),
        "categories": ",".join(sorted(set(categories))),
    }


def _sqlite_pragmas(connection: Any, _record: Any) -> None:
    cursor = connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()
