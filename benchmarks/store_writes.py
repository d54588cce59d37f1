"""How fast the arena store commits votes (each its own durable transaction: SQLite WAL,
synchronous=FULL): votes/s and commit latency, from one writer and from several processes
writing at once.

    python benchmarks/store_writes.py --votes 500 --processes 1,4
"""

from __future__ import annotations

import argparse
import multiprocessing
import statistics
import tempfile
import time
from pathlib import Path

from palestra.arena.store import ArenaEvent, ArenaStore


def vote(i: int) -> ArenaEvent:
    state = {"model_name": "a", "messages": [["user", "hi"], ["assistant", "hello " * 50]]}
    return ArenaEvent(
        "leftvote", f"user_{i % 17}", ["a", "b"], [state, {**state, "model_name": "b"}],
        shown=["", ""], battle_id=str(i),
    )  # fmt: skip


def writer(path: str, count: int, queue: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    store = ArenaStore(path)
    latencies = []
    for i in range(count):
        started = time.perf_counter()
        store.record(vote(i))
        latencies.append(time.perf_counter() - started)
    queue.put(latencies)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--votes", type=int, default=500, help="per process")
    parser.add_argument("--processes", default="1,4")
    args = parser.parse_args()
    print("| writer processes | votes | votes/s | p50 commit ms | p99 commit ms |")
    print("|---:|---:|---:|---:|---:|")
    for processes in (int(p) for p in args.processes.split(",")):
        with tempfile.TemporaryDirectory() as folder:
            path = str(Path(folder) / "bench.db")
            ArenaStore(path).close()
            queue: multiprocessing.Queue = multiprocessing.Queue()  # type: ignore[type-arg]
            workers = [
                multiprocessing.Process(target=writer, args=(path, args.votes, queue))
                for _ in range(processes)
            ]
            started = time.perf_counter()
            for w in workers:
                w.start()
            latencies = [x for _ in workers for x in queue.get()]
            for w in workers:
                w.join()
            elapsed = time.perf_counter() - started
            latencies.sort()
            p99 = latencies[int(0.99 * (len(latencies) - 1))]
            print(
                f"| {processes} | {len(latencies)} | {len(latencies) / elapsed:.0f} | "
                f"{statistics.median(latencies) * 1000:.2f} | {p99 * 1000:.2f} |"
            )


if __name__ == "__main__":
    main()
