"""Rating speed: Bradley-Terry with bootstrap intervals on simulated battles (aggregation,
fit, rounds), the sandwich interval, and style control with its own bootstrap.

    python benchmarks/ratings.py [--battles 1000000] [--models 120] [--rounds 100]
"""

from __future__ import annotations

import argparse
import time

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--battles", type=int, default=1_000_000)
    parser.add_argument("--models", type=int, default=120)
    parser.add_argument("--rounds", type=int, default=100)
    parser.add_argument("--skip-style", action="store_true")
    args = parser.parse_args()

    from palestra.arena.ratings import bradley_terry as bt
    from palestra.arena.ratings.counts import PairCounts
    from palestra.arena.ratings.style import StyleData, bootstrap_style, fit_style

    rng = np.random.default_rng(0)
    truth = rng.normal(0, 150, args.models)
    a = rng.integers(0, args.models, args.battles)
    b = (a + rng.integers(1, args.models, args.battles)) % args.models
    p = 1 / (1 + 10 ** ((truth[b] - truth[a]) / 400))
    tie = 0.8 * p * (1 - p)
    u = rng.random(args.battles)
    outcome = np.where(u < p - tie / 2, 0, np.where(u < p + tie / 2, 2, 1))
    models = [f"model-{i:03d}" for i in range(args.models)]
    print(f"{args.battles:,} battles, {args.models} models, {args.rounds} bootstrap rounds")

    started = time.perf_counter()
    counts = PairCounts.from_arrays(models, a, b, outcome)
    aggregated = time.perf_counter()
    logits = bt.fit_logits(counts)
    fitted = time.perf_counter()
    samples = bt.bootstrap_logits(counts, args.rounds, seed=0, start=logits)
    booted = time.perf_counter()
    bt.sandwich_covariance(counts, logits)
    sandwiched = time.perf_counter()
    ratings = bt.to_ratings(logits, models, bt.Scale())
    error = np.abs((ratings - 1000) - (truth - truth.mean())).max()
    print(f"aggregate to {len(counts.a):,} pair rows : {aggregated - started:7.2f} s")
    print(
        f"BT fit                          : {fitted - aggregated:7.2f} s  "
        f"(max |error| vs truth {error:.1f} points)"
    )
    print(f"BT bootstrap x{args.rounds:<4}               : {booted - fitted:7.2f} s")
    print(f"sandwich interval               : {sandwiched - booted:7.2f} s")
    print(f"BT total with bootstrap         : {booted - started:7.2f} s")
    del samples
    if args.skip_style:
        return
    lengths = rng.integers(20, 1000, (args.battles, 2)).astype(float)
    markdown = rng.poisson(2, (args.battles, 2, 3)).astype(float)
    style_a = np.column_stack([lengths[:, 0], markdown[:, 0]])
    style_b = np.column_stack([lengths[:, 1], markdown[:, 1]])
    started = time.perf_counter()
    data = StyleData.from_arrays(models, a, b, outcome, style_a, style_b)
    fit_style(data)
    fitted = time.perf_counter()
    bootstrap_style(data, args.rounds, seed=0)
    booted = time.perf_counter()
    print(f"style control fit               : {fitted - started:7.2f} s")
    print(f"style control bootstrap x{args.rounds:<4}    : {booted - fitted:7.2f} s")
    print(f"style control total             : {booted - started:7.2f} s")


if __name__ == "__main__":
    main()
