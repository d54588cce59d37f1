"""Bringing an arena store's schema to the revision this Palestra needs, through the
Alembic migrations in `arena/migrations/`.

Opening a store upgrades it (`ensure_current`), as Open WebUI does at start-up, so that
`palestra serve` after an upgrade of Palestra just works; `palestra arena migrate` does
the same on demand, reports the revisions, and can go back to an older one. A store made
before migrations existed (Palestra 0.1: the tables, no `alembic_version`) is stamped at
revision 0001 first. A store at a revision this Palestra does not know was made by a newer
Palestra and is refused, never written to.

Several processes may open one store at once (web servers behind a load balancer): the
migration runs under a lock, PostgreSQL's advisory lock inside the migration's transaction,
or a lock file beside a SQLite file, and a process that waited finds the work done.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING, Any

from palestra.core.errors import InvalidRequestError

if TYPE_CHECKING:
    from alembic.config import Config
    from alembic.script import ScriptDirectory
    from sqlalchemy.engine import Connection, Engine

MIGRATIONS = "palestra.arena:migrations"
FIRST_REVISION = "0001"  # the tables Palestra 0.1 made without migrations
_ADVISORY_LOCK = 0x70A1E57A  # PostgreSQL advisory lock key of arena migrations


@dataclass(frozen=True)
class Migration:
    """What a migration did: the revision before (None: an empty database) and after."""

    before: str | None
    after: str

    @property
    def changed(self) -> bool:
        return self.before != self.after


def _config(connection: Connection | None = None) -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", MIGRATIONS)
    config.attributes["connection"] = connection
    return config


def _scripts() -> ScriptDirectory:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(_config())


@cache
def revisions() -> tuple[str, ...]:
    """Every revision this Palestra knows, oldest first (read from the scripts once)."""
    return tuple(script.revision for script in reversed(list(_scripts().walk_revisions())))


def head() -> str:
    return revisions()[-1]


def current_revision(connection: Connection) -> str | None:
    """The store's revision; `FIRST_REVISION` for a store made before migrations; None for
    an empty database."""
    from alembic.runtime.migration import MigrationContext
    from sqlalchemy import inspect

    revision = MigrationContext.configure(connection).get_current_revision()
    if revision is None and inspect(connection).has_table("arena_events"):
        return FIRST_REVISION
    return revision


def _check_known(revision: str | None, url: str) -> None:
    if revision is not None and revision not in revisions():
        raise InvalidRequestError(
            f"arena store {url} is at schema revision {revision!r}, which this Palestra "
            f"does not know (it knows {', '.join(revisions())}): a newer Palestra made it; "
            "upgrade Palestra"
        )


@contextmanager
def _exclusive(engine: Engine) -> Iterator[Connection]:
    """A connection in a transaction that no other process migrates beside."""
    from sqlalchemy import text

    lock: Any = None
    database = engine.url.database
    if engine.dialect.name == "sqlite" and database and database != ":memory:":
        from filelock import FileLock

        lock = FileLock(database + ".migrate.lock", timeout=120)
        lock.acquire()
    try:
        with engine.begin() as connection:
            if engine.dialect.name == "postgresql":
                connection.execute(
                    text("SELECT pg_advisory_xact_lock(:key)"), {"key": _ADVISORY_LOCK}
                )
            yield connection
    finally:
        if lock is not None:
            lock.release()


def migrate(engine: Engine, target: str = "head") -> Migration:
    """Upgrade (or, to an older revision, downgrade) the store to `target`."""
    from alembic import command

    url = engine.url.render_as_string(hide_password=True)
    known = revisions()
    wanted = known[-1] if target == "head" else target
    if wanted not in known:
        raise InvalidRequestError(
            f"unknown schema revision {target!r}; this Palestra knows {', '.join(known)}"
        )
    with _exclusive(engine) as connection:
        before = current_revision(connection)
        _check_known(before, url)
        config = _config(connection)
        if before == FIRST_REVISION and not _has_version_table(connection):
            command.stamp(config, FIRST_REVISION)
        if before is None or known.index(wanted) > known.index(before):
            command.upgrade(config, wanted)
        elif known.index(wanted) < known.index(before):
            command.downgrade(config, wanted)
        after = current_revision(connection)
    assert after is not None
    return Migration(before, after)


def _has_version_table(connection: Connection) -> bool:
    from sqlalchemy import inspect

    return bool(inspect(connection).has_table("alembic_version"))


def ensure_current(engine: Engine) -> Migration | None:
    """Upgrade the store if it is behind (None when it was already current)."""
    with engine.connect() as connection:
        revision = current_revision(connection)
    if revision == head():
        return None
    _check_known(revision, engine.url.render_as_string(hide_password=True))
    return migrate(engine)
