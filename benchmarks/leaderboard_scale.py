"""The leaderboard at a million stored votes: what a vote costs to store, what the web UI's
first board and each later refresh cost, against reading every conversation as before.

    python benchmarks/leaderboard_scale.py                     # 1,000,000 votes, SQLite
    python benchmarks/leaderboard_scale.py --votes 100000 --store postgresql://...

Votes are simulated: 50 models, 50,000 voters, short answers (some with markdown, for
the style counts). The store is filled through `ArenaStore.record_many`, so every vote
gets its facts exactly as a web server's vote does.
"""

from __future__ import annotations

import argparse
import random
import resource
import statistics
import tempfile
import time
from pathlib import Path

from palestra.arena.settings import CleaningOptions, RatingOptions
from palestra.arena.store import ArenaEvent, ArenaStore
from palestra.webui.service import LiveBoard

KINDS = ("leftvote", "rightvote", "tievote", "bothbad_vote")
ANSWERS = ("A short answer.", "## Steps\n- one\n- two\n**Done.**", "Well, it depends on it.")


def vote(rng: random.Random, number: int, models: list[str]) -> ArenaEvent:
    a, b = rng.sample(models, 2)
    question = f"question {rng.randrange(200_000)}"
    states = [
        {"model_name": m, "offset": 0,
         "messages": [["user", question], ["assistant", rng.choice(ANSWERS)]]}
        for m in (a, b)
    ]  # fmt: skip
    return ArenaEvent(
        rng.choice(KINDS), f"user_{rng.randrange(50_000)}", [a, b], states,
        shown=["", ""], tstamp=1.7e9 + number,
    )  # fmt: skip


def fill(store: ArenaStore, votes: int, rng: random.Random, models: list[str]) -> float:
    started = time.perf_counter()
    for start in range(0, votes, 20_000):
        count = min(20_000, votes - start)
        store.record_many(vote(rng, start + i, models) for i in range(count))
        print(f"  {start + count:>9,} votes stored", flush=True)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--votes", type=int, default=1_000_000)
    parser.add_argument("--store", help="A database URL (default: a new SQLite file)")
    parser.add_argument("--compare-full-read", action="store_true",
                        help="Also time reading every conversation (the old way)")  # fmt: skip
    args = parser.parse_args()
    rng = random.Random(0)
    models = [f"model-{i:02d}" for i in range(50)]
    folder = tempfile.mkdtemp(prefix="palestra-board-")
    store = ArenaStore(args.store or Path(folder) / "arena.db")
    print(f"filling {store.url} with {args.votes:,} votes")
    fill_seconds = fill(store, args.votes, rng, models)

    writes = []
    for i in range(20):  # one vote at a time, as the web UI stores it
        event = vote(rng, args.votes + i, models)
        started = time.perf_counter()
        store.record(event)
        writes.append(time.perf_counter() - started)

    board = LiveBoard(store, RatingOptions(), CleaningOptions())
    started = time.perf_counter()
    board.refresh()
    first = time.perf_counter() - started
    for i in range(1000):
        store.record(vote(rng, args.votes + 20 + i, models))
    started = time.perf_counter()
    result = board.refresh()
    later = time.perf_counter() - started
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    print()
    print(f"| stored votes | {store.count():,} |")
    print("|---|---|")
    print(f"| filling (record_many, 20k a batch) | {fill_seconds:.0f} s |")
    print(f"| one vote stored (p50 / max of 20) | "
          f"{statistics.median(writes) * 1000:.1f} / {max(writes) * 1000:.1f} ms |")  # fmt: skip
    print(f"| first board (read all facts, clean, rate) | {first:.1f} s |")
    print(f"| refresh after 1,000 new votes (read 1,000, rate all) | {later:.1f} s |")
    print(f"| next refresh no sooner than | {max(2.0, 10 * later):.0f} s after |")
    print(f"| peak memory of this process | {rss:.0f} MiB |")
    print(f"| {result.summary()} |")
    if args.compare_full_read:
        started = time.perf_counter()
        battles = store.battles()
        print(f"| reading every conversation instead (store.battles()) | "
              f"{time.perf_counter() - started:.1f} s for {len(battles):,} |")  # fmt: skip


if __name__ == "__main__":
    main()
