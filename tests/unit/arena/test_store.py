"""The arena store, on SQLite and on a real PostgreSQL server: events round-trip, battles
for the ratings, FastChat log export and import, hashed users, several writer processes at
once, a kill -9 mid-writing losing nothing that was acknowledged, and limits shared by
processes."""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from palestra.arena.store import ArenaEvent, ArenaStore
from palestra.core.errors import InvalidRequestError


def state(model: str, question: str, answer: str) -> dict:
    return {
        "template_name": "chatml",
        "system_message": "",
        "roles": ["user", "assistant"],
        "messages": [["user", question], ["assistant", answer]],
        "offset": 0,
        "conv_id": f"conv-{model}",
        "model_name": model,
    }


def battle_vote(store: ArenaStore, kind: str, a: str, b: str, anony: bool = True) -> ArenaEvent:
    return ArenaEvent(
        type=kind,
        user=store.hash_user("203.0.113.7"),
        models=[a, b],
        states=[state(a, "hi", f"hello from {a}"), state(b, "hi", f"hey from {b}")],
        shown=["", ""] if anony else [a, b],
        battle_id="battle-1",
    )


def stored_text(store: ArenaStore) -> str:
    """Every row of every table, as text."""
    from sqlalchemy import select

    with store.engine.connect() as connection:
        return " ".join(
            str(row) for table in store.metadata.sorted_tables
            for row in connection.execute(select(table))
        )  # fmt: skip


def test_round_trip_battles_and_hashed_users(store_location: str) -> None:
    store = ArenaStore(store_location)
    user = store.hash_user("203.0.113.7")
    assert user.startswith("user_") and "203.0.113.7" not in user
    assert user == store.hash_user("203.0.113.7") != store.hash_user("203.0.113.8")
    chat = ArenaEvent(
        type="chat",
        user=user,
        models=["alpha"],
        states=[state("alpha", "hi", "hello")],
        gen_params={"temperature": 0.7},
        start=1.0,
        finish=2.0,
    )
    store.record(chat)
    store.record(battle_vote(store, "leftvote", "alpha", "beta"))
    store.record(battle_vote(store, "tievote", "alpha", "gamma", anony=False))
    assert store.count() == 3 and store.count("chat") == 1
    battles = store.battles()
    assert [(b.model_a, b.model_b, b.winner, b.anony) for b in battles] == [
        ("alpha", "beta", "model_a", True),
        ("alpha", "gamma", "tie", False),
    ]
    assert battles[0].conversation_a[-1]["content"] == "hello from alpha"
    assert battles[0].judge == user and battles[1].judge == user  # the voter, hashed
    assert "hello from alpha" in stored_text(store) and "203.0.113.7" not in stored_text(store)
    if "://" not in store_location:
        assert b"203.0.113.7" not in Path(store_location).read_bytes()
    store.close()
    reopened = ArenaStore(store_location)  # same salt: same user hash
    assert reopened.hash_user("203.0.113.7") == user


def test_export_import_fastchat_log(tmp_path: Path, store_location: str) -> None:
    store = ArenaStore(tmp_path / "a.db")
    store.record(battle_vote(store, "rightvote", "alpha", "beta"))
    store.record(ArenaEvent("upvote", store.hash_user("x"), ["alpha"], [state("alpha", "q", "a")]))
    exported = tmp_path / "log.jsonl"
    assert store.export_jsonl(exported) == 2
    lines = [json.loads(line) for line in exported.read_text().splitlines()]
    assert lines[0]["type"] == "rightvote" and lines[0]["models"] == ["", ""]
    assert [s["model_name"] for s in lines[0]["states"]] == ["alpha", "beta"]
    assert lines[1]["model"] == "alpha" and lines[1]["state"]["messages"][1] == ["assistant", "a"]
    # A FastChat log with raw addresses: imported with the addresses hashed.
    fastchat = tmp_path / "2024-05-01-conv.json"
    record = {"tstamp": 5.0, "type": "leftvote", "models": ["", ""], "ip": "198.51.100.4",
              "states": [state("gamma", "q", "a1"), state("delta", "q", "a2")]}  # fmt: skip
    fastchat.write_text(json.dumps(record) + "\n" + json.dumps({"type": "unknown"}) + "\n")
    other = ArenaStore(store_location)
    assert other.import_jsonl(exported) == (2, 0)
    assert other.import_jsonl(fastchat) == (1, 1)
    battles = other.battles()
    assert [(b.model_a, b.model_b, b.winner) for b in battles] == [
        ("alpha", "beta", "model_b"),
        ("gamma", "delta", "model_a"),
    ]
    assert battles[1].judge == other.hash_user("198.51.100.4")
    assert "198.51.100.4" not in stored_text(other)
    reexported = tmp_path / "again.jsonl"
    other.export_jsonl(reexported)
    assert reexported.read_text().splitlines()[:2] == exported.read_text().splitlines()


def test_bad_event_type_and_newer_schema(store_location: str) -> None:
    from sqlalchemy import text

    with pytest.raises(InvalidRequestError, match="unknown arena event type"):
        ArenaEvent("like", "u", ["m"], [{}])
    store = ArenaStore(store_location)
    with store.engine.begin() as connection:
        connection.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    store.close()
    with pytest.raises(InvalidRequestError, match=r"'9999'.*a newer Palestra made it"):
        ArenaStore(store_location)


WRITER = textwrap.dedent(
    """
    import sys
    from palestra.arena.store import ArenaEvent, ArenaStore
    store = ArenaStore(sys.argv[1])
    for i in range(int(sys.argv[3])):
        states = [{"model_name": m, "messages": []} for m in ("a", "b")]
        event = ArenaEvent("leftvote", "user_" + sys.argv[2], ["a", "b"], states,
                           battle_id=f"{sys.argv[2]}-{i}")
        print(store.record(event), flush=True)
    """
)


def test_concurrent_writer_processes(store_location: str) -> None:
    path = store_location
    ArenaStore(path).close()
    writers = [
        subprocess.Popen([sys.executable, "-c", WRITER, path, str(n), "60"], stdout=subprocess.PIPE)
        for n in range(4)
    ]
    acknowledged = []
    for writer in writers:
        out, _ = writer.communicate(timeout=120)
        assert writer.returncode == 0
        acknowledged += [int(x) for x in out.split()]
    store = ArenaStore(path)
    events = list(store.events_of())
    assert len(events) == 240 == len(set(acknowledged))
    assert {e.battle_id for e in events} == {f"{n}-{i}" for n in range(4) for i in range(60)}


def test_kill_during_writes_loses_nothing_acknowledged(store_location: str) -> None:
    path = store_location
    writer = subprocess.Popen(
        [sys.executable, "-c", WRITER, path, "k", "100000"], stdout=subprocess.PIPE, text=True
    )
    assert writer.stdout is not None
    acknowledged = []
    deadline = time.monotonic() + 60
    while len(acknowledged) < 200 and time.monotonic() < deadline:
        acknowledged.append(int(writer.stdout.readline()))
    writer.send_signal(signal.SIGKILL)
    writer.wait(10)
    assert len(acknowledged) == 200
    if "://" not in path:
        with sqlite3.connect(path) as db:
            assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    stored = {e.id for e in ArenaStore(path).events_of()}
    assert set(acknowledged) <= stored


def test_arena_cli_export_import_and_rate_from_a_store(tmp_path: Path) -> None:
    from tests.integration.cluster import CLI

    store = ArenaStore(tmp_path / "ui.db")
    for kind in ("leftvote", "leftvote", "rightvote", "tievote"):
        store.record(battle_vote(store, kind, "alpha", "beta"))
    store.close()

    def palestra(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=120)

    exported = tmp_path / "log.jsonl"
    result = palestra("arena", "export", str(tmp_path / "ui.db"), str(exported))
    assert result.returncode == 0, result.stderr
    assert "4 events" in result.stdout and len(exported.read_text().splitlines()) == 4
    copy = f"sqlite:///{tmp_path / 'copy.db'}"
    result = palestra("arena", "import", copy, str(exported))
    assert "4 events imported" in result.stdout
    rated = palestra("arena", "rate", copy, "--no-clean", "--format", "json", "--rounds", "10")
    assert rated.returncode == 0, rated.stderr
    rows = {r["model"]: r for r in json.loads(rated.stdout)["rows"]}
    assert rows["alpha"]["battles"] == 4 and rows["alpha"]["rating"] > rows["beta"]["rating"]
    missing = palestra("arena", "export", str(tmp_path / "nope.db"), str(exported))
    assert missing.returncode == 2 and "does not exist" in missing.stderr


LIMITED = textwrap.dedent(
    """
    import sys
    from palestra.arena.store import ArenaStore
    store = ArenaStore(sys.argv[1])
    allowed = sum(store.allowance("message", "user_1", 20, 3600) == 0 for _ in range(30))
    print(allowed, flush=True)
    """
)


def test_a_limit_holds_across_processes(store_location: str) -> None:
    """Four processes (four web servers) each let the same user try 30 messages under a
    limit of 20 per hour: 20 pass in all, not 20 per process."""
    ArenaStore(store_location).close()
    processes = [
        subprocess.Popen([sys.executable, "-c", LIMITED, store_location], stdout=subprocess.PIPE)
        for _ in range(4)
    ]
    allowed = []
    for process in processes:
        out, _ = process.communicate(timeout=120)
        assert process.returncode == 0
        allowed.append(int(out))
    assert sum(allowed) == 20, allowed
    store = ArenaStore(store_location)
    assert store.allowance("message", "user_1", 20, 3600) > 0
    assert store.allowance("message", "user_2", 20, 3600) == 0
