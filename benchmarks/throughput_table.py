"""The serving throughput table: for one model, plain `model.generate` (the ceiling) and
`palestra serve` end to end through the OpenAI API, at 1 and 16 clients, measured back to
back in one run (this machine's speed drifts, so only ratios from one run mean anything).

    python benchmarks/throughput_table.py [--model-path PATH] [--max-tokens 64]

Starts `palestra serve` on free loopback ports, prints a markdown table and stops it.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import socket
import subprocess
import sys
import time

import httpx
import raw_generate
import serve_throughput


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def engine_clock(worker_port: int) -> tuple[int, float, int, float]:
    """The transformers engine's decode steps and their seconds, prefill passes and theirs
    (the worker's /health; zeros for an engine that does not keep them)."""
    health = httpx.get(f"http://127.0.0.1:{worker_port}/health", timeout=10).json()
    figures = health["models"][0]
    names = ("decode_steps", "decode_seconds", "prefill_passes", "prefill_seconds")
    steps, step_s, passes, pass_s = (figures.get(name, 0) for name in names)
    return int(steps), float(step_s), int(passes), float(pass_s)


def step_and_prefill(
    before: tuple[int, float, int, float], after: tuple[int, float, int, float]
) -> tuple[float, float]:
    """The mean decode step and prefill pass (seconds) between two `engine_clock` reads."""
    steps, step_s, passes, pass_s = (b - a for a, b in zip(before, after, strict=True))
    return step_s / max(1, steps), pass_s / max(1, passes)


def start_server(
    model_path: str | None,
    backend: str = "hf",
    extra: list[str] | None = None,
    worker_port: int | None = None,
) -> tuple[subprocess.Popen[bytes], str, str]:
    port, controller, worker = free_port(), free_port(), worker_port or free_port()
    command = [
        sys.executable, "-m", "palestra.cli.main", "serve", "--port", str(port),
        "--controller-port", str(controller), "--worker-port", str(worker),
        "--backend", backend, "--no-webui",
    ]  # fmt: skip
    if backend == "hf":
        command += ["--device", "cpu"]  # an option of the transformers backend only
    if model_path:
        command += ["--model-path", model_path]
    command += extra or []
    server = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}/v1"
    deadline = time.monotonic() + 600  # --torch-compile compiles before it serves
    while time.monotonic() < deadline:
        try:
            models = httpx.get(base + "/models", timeout=2).json().get("data", [])
            if models:
                return server, base, models[0]["id"]
        except (httpx.HTTPError, ValueError):
            pass
        time.sleep(0.5)
    server.kill()
    raise SystemExit("palestra serve did not come up within 600 s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model-path", default=None, help="default: the bundled model")
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--requests", type=int, default=32, help="requests per serving level")
    parser.add_argument("--stream-interval", type=int, default=1, help="tokens per frame")
    args = parser.parse_args()

    paced = ["--stream-interval", str(args.stream_interval)] if args.stream_interval > 1 else []
    server, base, model = start_server(args.model_path, extra=paced)
    rows = []
    try:
        for clients in (1, 16):
            raw = raw_generate.measure(args.model_path, [clients], args.max_tokens, 3)[clients]
            served = asyncio.run(
                serve_throughput.level(
                    base, model, clients, max(args.requests, clients), args.max_tokens, "unused"
                )
            )
            rows.append((clients, raw, served))
            print(f"... {clients} client(s) done", file=sys.stderr, flush=True)
    finally:
        os.kill(server.pid, signal.SIGINT)
        server.wait(30)
    print(
        f"\nmodel: {args.model_path or 'bundled palestra-tiny'}, {args.max_tokens} new tokens, "
        f"stream interval {args.stream_interval}"
    )
    print(
        "| clients | raw generate tok/s (batch = clients) | palestra serve tok/s | ratio "
        "| p50 TTFT | p95 TTFT | p50 latency |"
    )
    print("|---|---|---|---|---|---|---|")
    for clients, raw, served in rows:
        print(
            f"| {clients} | {raw:.1f} | {served['tokens_per_s']:.1f} | "
            f"{served['tokens_per_s'] / raw:.2f} | {served['p50_ttft'] * 1000:.0f} ms | "
            f"{served['p95_ttft'] * 1000:.0f} ms | {served['p50_latency']:.2f} s |"
        )


if __name__ == "__main__":
    main()
