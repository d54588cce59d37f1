"""Voters against several `palestra webui` processes on one store, one of which is killed
(kill -9) halfway: votes per second, time to acknowledge a vote, and whether every vote a
page acknowledged is in the store.

    python benchmarks/arena_load.py                      # SQLite file, then PostgreSQL
    python benchmarks/arena_load.py --store sqlite --servers 3 --voters 24 --seconds 90

Each voter is a Gradio client (the protocol the page speaks, one session each; the servers
run with `--gradio-api`, which opens the page's handlers to it): it starts a new round,
sends a unique message in the battle tab, waits for both streamed answers, votes, and reads the
page's acknowledgement (the time from the vote's call to it includes the Gradio client's
own round trip, measured beside it on a handler that does nothing). The models are a
scripted OpenAI-compatible stand-in (instant answers), so the web servers and the store
are what is measured. Voters of the killed
server move to a live one, as a load balancer would send them. PostgreSQL is Debian's
server started in a temporary folder (tests/postgres.py).
"""

from __future__ import annotations

import argparse
import json
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the test helpers: fake provider, PostgreSQL server, ports

from tests.fakes.openai_server import build_openai_app  # noqa: E402
from tests.fakes.server import serve_in_thread  # noqa: E402
from tests.integration.cluster import CLI, free_port, wait_for  # noqa: E402

from palestra.arena.store import ArenaStore  # noqa: E402

KINDS = ("/record", "/record_1", "/record_2", "/record_3")  # A, B, tie, both bad


@dataclass
class Tally:
    acknowledged: list[str] = field(default_factory=list)  # the voted battles' messages
    latencies: list[float] = field(default_factory=list)  # vote click -> acknowledgement
    failed: int = 0  # rounds cut by the killed server (not acknowledged)
    lock: threading.Lock = field(default_factory=threading.Lock)


def start_servers(count: int, store: str, endpoints: Path, folder: Path) -> list[tuple]:
    servers = []
    for n in range(count):
        port = free_port()
        log = (folder / f"webui-{n}.log").open("w")
        process = subprocess.Popen(
            [*CLI, "webui", "--api-base", f"http://127.0.0.1:{free_port()}/v1",
             "--register-api-endpoint-file", str(endpoints), "--store", store,
             "--port", str(port), "--gradio-api"],
            stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        servers.append((process, f"http://127.0.0.1:{port}"))
    for _, url in servers:
        wait_for(lambda url=url: httpx.get(url, timeout=2).status_code == 200, 120, url)
    return servers


def round_trip(url: str) -> float:
    """The Gradio client's own cost: p50 of a handler that does nothing (ms)."""
    from gradio_client import Client

    client = Client(url, verbose=False)
    times = []
    for _ in range(20):
        started = time.perf_counter()
        client.predict(api_name="/clear")
        times.append(time.perf_counter() - started)
    return 1000 * statistics.median(times)


def voter(servers: list[tuple], first: int, deadline: float, tally: Tally, seed: int) -> None:
    from gradio_client import Client

    rng = random.Random(seed)
    which = first
    client = None
    while time.monotonic() < deadline:
        process, url = servers[which]
        if process.poll() is not None:  # killed: the balancer sends us to a live one
            which = next(i for i, (p, _) in enumerate(servers) if p.poll() is None)
            client = None
            continue
        try:
            client = client or Client(url, verbose=False)
            message = f"vote {uuid.uuid4().hex}"
            client.predict(api_name="/clear")  # New round: a voted round takes no message
            client.predict({"text": message, "files": []}, 0.7, 1.0, 32, api_name="/send")
            clicked = time.perf_counter()
            shown = client.predict(api_name=rng.choice(KINDS))
            waited = time.perf_counter() - clicked
            notice = next((x for x in shown if isinstance(x, str) and "vote" in x), "")
        except Exception:  # the server died under us
            with tally.lock:
                tally.failed += 1
            client = None
            continue
        if "vote recorded" in str(notice):
            with tally.lock:
                tally.acknowledged.append(message)
                tally.latencies.append(waited)


def run(store: str, servers_count: int, voters: int, seconds: float, folder: Path) -> dict:
    with serve_in_thread(build_openai_app()) as fake:
        endpoints = folder / "endpoints.json"
        endpoints.write_text(
            json.dumps({n: {"model_name": n, "api_base": fake + "/v1"} for n in ("left", "right")})
        )
        ArenaStore(store).close()  # the schema made once, before the servers race for it
        servers = start_servers(servers_count, store, endpoints, folder)
        baseline = round_trip(servers[1][1])
        tally = Tally()
        started = time.monotonic()
        deadline = started + seconds
        threads = [
            threading.Thread(
                target=voter, args=(servers, n % servers_count, deadline, tally, n), daemon=True
            )
            for n in range(voters)
        ]
        for thread in threads:
            thread.start()
        time.sleep(seconds / 2)
        servers[0][0].send_signal(signal.SIGKILL)  # no chance to flush or clean up
        for thread in threads:
            thread.join(seconds + 60)
        elapsed = time.monotonic() - started
        for process, _ in servers:
            if process.poll() is None:
                process.terminate()
                process.wait(30)
    stored = {
        state["messages"][0][1]
        for event in ArenaStore(store).events_of("leftvote", "rightvote", "tievote", "bothbad_vote")
        for state in event.states[:1]
        if state.get("messages")
    }
    lost = [m for m in tally.acknowledged if m not in stored]
    latencies = sorted(tally.latencies)
    return {
        "acknowledged": len(tally.acknowledged),
        "votes_per_s": len(tally.acknowledged) / elapsed,
        "p50_ms": 1000 * statistics.median(latencies) if latencies else float("nan"),
        "p99_ms": 1000 * latencies[int(0.99 * (len(latencies) - 1))] if latencies else float("nan"),
        "cut": tally.failed,
        "lost": len(lost),
        "no_op_ms": baseline,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--store", choices=("sqlite", "postgresql", "both"), default="both")
    parser.add_argument("--servers", type=int, default=2)
    parser.add_argument("--voters", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=60)
    args = parser.parse_args()
    rows = []
    kinds = ("sqlite", "postgresql") if args.store == "both" else (args.store,)
    for kind in kinds:
        folder = Path(tempfile.mkdtemp(prefix=f"palestra-load-{kind}-"))
        load = (args.servers, args.voters, args.seconds, folder)
        if kind == "sqlite":
            rows.append((kind, run(str(folder / "arena.db"), *load)))
        else:
            from tests.postgres import PostgresServer

            with PostgresServer() as server:
                rows.append((kind, run(server.database(), *load)))
        print(f"{kind}: {rows[-1][1]}", flush=True)
    print()
    print(f"{args.servers} web servers (one killed with SIGKILL halfway), {args.voters} voters, "
          f"{args.seconds:.0f} s")  # fmt: skip
    print(
        "| store | votes acknowledged | votes/s | ack p50 | ack p99 | a no-op handler p50 "
        "| rounds cut by the kill | acknowledged but lost |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for kind, row in rows:
        print(
            f"| {kind} | {row['acknowledged']} | {row['votes_per_s']:.1f} | "
            f"{row['p50_ms']:.0f} ms | {row['p99_ms']:.0f} ms | {row['no_op_ms']:.0f} ms | "
            f"{row['cut']} | {row['lost']} |"
        )


if __name__ == "__main__":
    main()
