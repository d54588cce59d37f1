"""Two `palestra serve` configurations against each other, in alternating rounds (this
machine's speed drifts by 15-30% within minutes, so only pairs measured side by side
compare): tok/s, time to first token, refusals, the CPU time each process of the server
spends per streamed token, and the transformers engine's own clock (its mean decode step
and prefill pass in the measured load, from the worker's /health), so the first token can
be read against issue 19's bound: one prefill plus two decode steps.

    python benchmarks/serve_ab.py --a "--engine-process off" --b "--engine-process on" \\
        [--model-path PATH] [--clients 16] [--requests 160] [--pairs 4]
    python benchmarks/serve_ab.py --backend llamacpp --model-path tiny.gguf \\
        --a "--parallel 16 --threads 2" --b "--parallel 16 --threads 1"

Each round starts the server, warms it with two requests per client, then runs the load
(serve_throughput's streaming client, 64 new tokens, greedy, ignore_eos) and stops it.
Rounds alternate a-b, b-a, so neither side always runs first.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import statistics
import time

import psutil
import serve_throughput
import throughput_table


def one_round(
    model_path: str | None, backend: str, flags: list[str], clients: int, requests: int
) -> dict:
    worker_port = throughput_table.free_port()
    server, base, model = throughput_table.start_server(
        model_path, backend, extra=flags, worker_port=worker_port
    )
    try:
        asyncio.run(serve_throughput.level(base, model, clients, 2 * clients, 64, "-"))
        processes = [psutil.Process(server.pid), *psutil.Process(server.pid).children(True)]
        before = {p.pid: sum(p.cpu_times()[:2]) for p in processes}
        clock_before = throughput_table.engine_clock(worker_port)
        started = time.perf_counter()
        row = asyncio.run(serve_throughput.level(base, model, clients, requests, 64, "-"))
        tokens = row["tokens_per_s"] * (time.perf_counter() - started)
        row["us_per_token"] = {
            _role(p): 1e6 * (sum(p.cpu_times()[:2]) - before[p.pid]) / tokens for p in processes
        }
        row["step"], row["prefill"] = throughput_table.step_and_prefill(
            clock_before, throughput_table.engine_clock(worker_port)
        )
        return row
    finally:
        os.kill(server.pid, signal.SIGINT)
        server.wait(30)


def _role(process: psutil.Process) -> str:
    """serve (API server and controller), worker, or engine (the engine process)."""
    line = process.cmdline()
    return "engine" if any("engine_main" in part for part in line) else line[3]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--a", required=True, help="serve flags of side a, one string")
    parser.add_argument("--b", required=True, help="serve flags of side b, one string")
    parser.add_argument("--model-path", default=None, help="default: the bundled model")
    parser.add_argument("--backend", default="hf", help="hf (the engine's clock too) or llamacpp")
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--requests", type=int, default=160)
    parser.add_argument("--pairs", type=int, default=4)
    args = parser.parse_args()
    sides = {"a": args.a.split(), "b": args.b.split()}
    speeds: dict[str, list[float]] = {"a": [], "b": []}
    print(f"a: {args.a}\nb: {args.b}\n{args.clients} clients, {args.requests} requests")
    print(
        "| pair | side | tok/s | p50 TTFT | p95 TTFT | decode step | prefill | p50 TTFT in "
        "(prefill + 2 steps) | refused | CPU us per token, by process |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for pair in range(args.pairs):
        for side in ("a", "b") if pair % 2 == 0 else ("b", "a"):
            row = one_round(args.model_path, args.backend, sides[side], args.clients, args.requests)
            speeds[side].append(row["tokens_per_s"])
            cpu = ", ".join(f"{name}: {us:.0f}" for name, us in row["us_per_token"].items())
            goal = row["prefill"] + 2 * row["step"]  # issue 19's bound on the first token
            clock = (  # the transformers engine's; llama.cpp's keeps none
                f"{1000 * row['step']:.1f} ms | {1000 * row['prefill']:.1f} ms | "
                f"{row['p50_ttft'] / goal:.2f}"
                if goal
                else "- | - | -"
            )
            print(
                f"| {pair + 1} | {side} | {row['tokens_per_s']:.1f} | "
                f"{1000 * row['p50_ttft']:.0f} ms | {1000 * row['p95_ttft']:.0f} ms | "
                f"{clock} | {row['refused']} | {cpu} |",
                flush=True,
            )
    ratios = ", ".join(f"{b / a:.2f}" for a, b in zip(speeds["a"], speeds["b"], strict=True))
    print(
        f"\nmedian tok/s a {statistics.median(speeds['a']):.1f}, "
        f"b {statistics.median(speeds['b']):.1f}; b/a by pair: {ratios}"
    )


if __name__ == "__main__":
    main()
