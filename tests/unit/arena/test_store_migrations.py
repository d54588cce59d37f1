"""The arena store's schema migrations (Alembic), on SQLite and on a real PostgreSQL
server: the migrations make exactly the tables the code uses; a store made by Palestra 0.1
(before migrations: tests/fixtures/arena-store-0.1.0.db, written by that release) upgrades
with nothing lost, and goes back down; first opens by several processes at once; and
`palestra arena migrate`."""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

from sqlalchemy import create_engine, inspect, text

from palestra.arena import migrate
from palestra.arena.store import ArenaEvent, ArenaStore, open_engine, store_url
from tests.integration.cluster import CLI

RELEASE_0_1 = Path(__file__).parents[2] / "fixtures" / "arena-store-0.1.0.db"
RELEASE_USER = "user_dfc82c64fffb73b4ca6e"  # 203.0.113.7 under that store's salt


def test_the_migrations_make_the_tables_the_code_uses(store_location: str) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    store = ArenaStore(store_location)
    with store.engine.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), store.metadata)
        version = connection.execute(text("SELECT version_num FROM alembic_version")).scalar()
    assert differences == []
    assert version == migrate.head() == migrate.revisions()[-1]


def release_store(store_location: str) -> str:
    """A store exactly as Palestra 0.1 left it, at `store_location`: the release's file
    itself, or its rows in the release's tables on PostgreSQL."""
    if "://" not in store_location:
        shutil.copy(RELEASE_0_1, store_location)
        return store_location
    engine = open_engine(store_location)
    migrate.migrate(engine, migrate.FIRST_REVISION)
    with sqlite3.connect(RELEASE_0_1) as source, engine.begin() as target:
        target.execute(text("DROP TABLE alembic_version"))  # 0.1 had no migrations
        target.execute(text("DELETE FROM palestra_meta"))
        for table in ("palestra_meta", "arena_events"):
            cursor = source.execute(f"SELECT * FROM {table}")
            columns = [c[0] for c in cursor.description]
            names = ", ".join(f'"{c}"' for c in columns)
            values = ", ".join(f":{c}" for c in columns)
            rows = [dict(zip(columns, row, strict=True)) for row in cursor]
            target.execute(text(f"INSERT INTO {table} ({names}) VALUES ({values})"), rows)
        target.execute(text("SELECT setval('arena_events_id_seq', 4)"))
    engine.dispose()
    return store_location


def schema_version(store: ArenaStore) -> str:
    with store.engine.connect() as connection:
        query = text("SELECT value FROM palestra_meta WHERE key = 'schema_version'")
        return str(connection.execute(query).scalar())


def test_a_store_made_by_palestra_0_1_upgrades_and_goes_back(store_location: str) -> None:
    location = release_store(store_location)
    store = ArenaStore(location)  # opening upgrades it
    assert [(b.model_a, b.model_b, b.winner) for b in store.battles()] == [
        ("alpha", "beta", "model_a"),
        ("alpha", "gamma", "tie"),
    ]
    assert store.battles()[1].extra == {"identity_leak": ["gamma"]}
    assert [e.type for e in store.events_of()] == ["chat", "leftvote", "tievote", "upvote"]
    assert store.hash_user("203.0.113.7") == RELEASE_USER  # the release's salt is kept
    assert schema_version(store) == "2"  # Palestra 0.1 refuses a store above its version 1
    assert store.allowance("message", RELEASE_USER, 1, 60) == 0  # the new table works
    assert store.record(_vote()) == 5  # ids go on from the release's
    facts, last = store.battle_facts()  # filled in for the release's votes, kept for the new
    assert [(b.model_a, b.winner, b.extra["identity_leak"]) for b in facts] == [
        ("alpha", "model_a", True),  # "hello from alpha": the answer names its model
        ("alpha", "tie", True),
        ("alpha", "model_b", False),
    ]
    assert last == 5 and store.battle_facts(after=last) == ([], 5)
    store.close()

    engine = open_engine(location)
    head = migrate.head()
    assert migrate.migrate(engine, "0001") == migrate.Migration(head, "0001")
    assert not inspect(engine).has_table("arena_limits")
    assert not inspect(engine).has_table("arena_battles")
    with engine.connect() as connection:
        assert connection.execute(text("SELECT count(*) FROM arena_events")).scalar() == 5
    assert migrate.migrate(engine, "head") == migrate.Migration("0001", head)
    assert not migrate.migrate(engine).changed
    engine.dispose()
    assert len(ArenaStore(location).battle_facts()[0]) == 3  # filled in again


def _vote() -> ArenaEvent:
    states = [{"model_name": m, "messages": []} for m in ("alpha", "beta")]
    return ArenaEvent("rightvote", RELEASE_USER, ["alpha", "beta"], states)


OPENER = textwrap.dedent(
    """
    import sys
    from palestra.arena.store import ArenaEvent, ArenaStore
    store = ArenaStore(sys.argv[1])
    states = [{"model_name": m, "messages": []} for m in ("a", "b")]
    print(store.record(ArenaEvent("leftvote", "user_" + sys.argv[2], ["a", "b"], states)))
    """
)


def test_processes_opening_a_new_store_at_once(store_location: str) -> None:
    """Web servers started together on an empty database: one makes the schema, the
    others wait for it; every one of them writes."""
    openers = [
        subprocess.Popen(
            [sys.executable, "-c", OPENER, store_location, str(n)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for n in range(4)
    ]
    for opener in openers:
        _, err = opener.communicate(timeout=120)
        assert opener.returncode == 0, err
    assert ArenaStore(store_location).count() == 4


def test_arena_migrate_command(store_location: str, tmp_path: Path) -> None:
    location = release_store(store_location)

    def palestra(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*CLI, "arena", "migrate", *args], capture_output=True, text=True, timeout=120
        )

    shown = create_engine(store_url(location)).url.render_as_string(hide_password=True)
    head = migrate.head()
    checked = palestra(location, "--dry-run")
    assert checked.stdout.strip() == f"{shown}: schema revision 0001; this Palestra's is {head}"
    assert palestra(location).stdout.strip() == f"{shown}: schema revision 0001 -> {head}"
    assert palestra(location).stdout.strip() == f"{shown}: already at schema revision {head}"
    assert palestra(location, "--to", "0001").stdout.strip().endswith(f"{head} -> 0001")
    unknown = palestra(location, "--to", "0099")
    assert unknown.returncode == 2
    assert unknown.stderr.strip() == (
        "palestra: error: unknown schema revision '0099'; this Palestra knows "
        + ", ".join(migrate.revisions())
    )
    missing = palestra(str(tmp_path / "nope.db"))
    assert missing.returncode == 2 and "does not exist" in missing.stderr


def test_a_database_that_cannot_be_reached_is_one_line() -> None:
    from tests.integration.cluster import free_port

    url = f"postgresql://palestra@127.0.0.1:{free_port()}/arena"
    result = subprocess.run(
        [*CLI, "arena", "rate", url], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 2
    assert result.stderr.startswith("palestra: error: cannot open arena store postgresql")
    assert "Connection refused" in result.stderr and len(result.stderr.splitlines()) == 1
