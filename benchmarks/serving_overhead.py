"""Where serving loses throughput against plain `model.generate`: the same load measured
one layer at a time, in alternating rounds of one run (this machine's speed drifts by
15-30%, so only figures from one run compare).

    python benchmarks/serving_overhead.py [--model-path PATH] [--clients 16] [--rounds 3]

Each layer runs --clients streams of --max-tokens new tokens, greedy, same prompt:

- raw, all threads / one thread: `model.generate` at batch --clients (the issue's ceiling
  is the first);
- engine, together: the transformers backend in this process, --clients requests at once;
- engine, clients: the same backend, --clients loops that each send the next request when
  their last one ends (--requests in all): the load a server sees, with newcomers joining a
  running batch;
- worker HTTP: that load against `palestra worker`'s /generate stream (newline-delimited
  JSON), no API server;
- OpenAI API: that load through `palestra serve`'s /v1/chat/completions (streamed SSE);
- with --engine-process, the first server's engine runs in its worker (`off`), and the
  last two layers run again against a second server whose engine runs in a process of
  its own (`on`, a worker's default).

Comparing neighbours says what each layer costs: the client pattern (continuous batching),
the worker's HTTP path, the API server's hop. For the API layer a second table splits the
mean wait for the first token by where it was timed: by the client, by the API server
(from its handler) and by the worker (from its handler), read from their /metrics.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import statistics
import subprocess
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import aiohttp
import httpx
import raw_generate
import serve_throughput
import throughput_table
from raw_generate import PROMPT  # serve_throughput's prompt too

from palestra.core.types import GenerationRequest, Message, SamplingParams

if TYPE_CHECKING:
    from palestra.backends.hf.backend import HFBackend


@dataclass
class Tally:
    """One layer's load in one round: tokens received and each request's first token."""

    started: float = field(default_factory=time.perf_counter)
    tokens: int = 0
    first_tokens: list[float] = field(default_factory=list)

    def received(self, sent: float, tokens: int, first: bool) -> bool:
        """Count `tokens` of a request sent at `sent`; returns whether the first has come."""
        self.tokens += tokens
        if first or not tokens:
            return first
        self.first_tokens.append(time.perf_counter() - sent)
        return True

    def figures(self) -> tuple[float, float | None]:
        """(tokens/s, p50 time to first token in seconds)."""
        elapsed = time.perf_counter() - self.started
        ttft = statistics.median(self.first_tokens) if self.first_tokens else None
        return self.tokens / elapsed, ttft


def load_backend(model_path: str | None) -> HFBackend:
    from palestra.backends.hf.cpu_threads import load_torch_teamless

    load_torch_teamless()  # as `palestra worker` does: the engine thread owns the threads
    from transformers.utils import logging as hf_logging

    from palestra.backends.hf.backend import HFBackend

    hf_logging.set_verbosity_error()
    return HFBackend.load(model_path, device="cpu")


def raw(backend: HFBackend, clients: int, max_tokens: int, threads: int) -> tuple[float, None]:
    """`model.generate` tokens/s at batch `clients` on `threads` torch threads."""
    import torch

    prompt = backend.chat_prompt([Message("user", PROMPT)])
    torch.set_num_threads(threads)
    tokens_per_s = raw_generate.speed(
        backend.model, backend.tokenizer, prompt, clients, max_tokens, repeats=3
    )
    torch.set_num_threads(1)  # the main thread's team rests while the other layers run
    return tokens_per_s, None


async def engine(
    backend: HFBackend, clients: int, requests: int, max_tokens: int, together: bool
) -> tuple[float, float | None]:
    """The in-process backend: `clients` requests at once, or `clients` loops."""
    prompt = backend.chat_prompt([Message("user", PROMPT)])
    sampling = SamplingParams(temperature=0, max_tokens=max_tokens, ignore_eos=True)
    tally = Tally()

    async def one() -> None:
        sent, first = time.perf_counter(), False
        request = GenerationRequest(prompt, sampling)
        async for chunk in backend.generate(request):
            first = tally.received(sent, len(chunk.token_ids), first)

    if together:
        await asyncio.gather(*(one() for _ in range(clients)))
    else:
        await loops(clients, requests, one)
    return tally.figures()


async def loops(clients: int, requests: int, send: Callable[[], Awaitable[None]]) -> None:
    """`clients` loops sending `requests` in all, each the next when its last one ends."""
    left = [requests]

    async def loop() -> None:
        while left[0] > 0:
            left[0] -= 1
            await send()

    await asyncio.gather(*(loop() for _ in range(clients)))


async def worker_http(
    worker: str, model: str, clients: int, requests: int, max_tokens: int
) -> tuple[float, float | None]:
    """The load against the worker's /generate stream."""
    body = {
        "model": model,
        "messages": [{"role": "user", "content": PROMPT}],
        "sampling": {"temperature": 0, "max_tokens": max_tokens, "ignore_eos": True},
    }
    connector = aiohttp.TCPConnector(limit=clients + 4)
    async with aiohttp.ClientSession(connector=connector) as session:
        tally = Tally()

        async def one() -> None:
            sent, first = time.perf_counter(), False
            async with session.post(f"{worker}/generate", json=body) as response:
                response.raise_for_status()
                async for line in serve_throughput.sse_lines(response.content):
                    if line:
                        message = json.loads(line)
                        if "error" in message:
                            raise RuntimeError(message["error"]["message"])
                        first = tally.received(sent, len(message.get("token_ids", ())), first)

        await loops(clients, requests, one)
    return tally.figures()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model-path", default=None, help="default: the bundled model")
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--requests", type=int, default=0, help="default: 4 per client")
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--engine-process", action="store_true", help="add a server with --engine-process on"
    )
    args = parser.parse_args()
    clients, tokens = args.clients, args.max_tokens
    requests = args.requests or 4 * clients
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()

    backend = load_backend(args.model_path)
    first = ["--engine-process", "off"] if args.engine_process else []  # else the default
    started = [Server.start(args.model_path, first)]
    if args.engine_process:
        started.append(Server.start(args.model_path, ["--engine-process", "on"]))
    (_, base, model, worker), waits = started[0].parts, started[0].waits
    layers: dict[str, Callable[[], tuple[float, float | None]]] = {
        f"raw, all threads ({cores})": lambda: raw(backend, clients, tokens, cores or 1),
        "raw, one thread": lambda: raw(backend, clients, tokens, 1),
        "engine, together": lambda: asyncio.run(engine(backend, clients, 0, tokens, True)),
        "engine, clients": lambda: asyncio.run(engine(backend, clients, requests, tokens, False)),
        "worker HTTP": lambda: asyncio.run(worker_http(worker, model, clients, requests, tokens)),
        "OpenAI API": lambda: api(servers, model, clients, requests, tokens, waits),
    }
    servers = (base.removesuffix("/v1"), worker)
    for other in started[1:]:
        _, other_base, _, other_worker = other.parts
        layers |= {
            "worker HTTP, engine process": lambda w=other_worker: asyncio.run(
                worker_http(w, model, clients, requests, tokens)
            ),
            "OpenAI API, engine process": lambda o=other, b=other_base, w=other_worker: api(
                (b.removesuffix("/v1"), w), model, clients, requests, tokens, o.waits
            ),
        }
    figures: dict[str, list[tuple[float, float | None]]] = {name: [] for name in layers}
    try:
        for measure in layers.values():  # warm-up: first calls, caches, the server's pool
            measure()
        for each in started:
            each.waits.clear()  # the table is of the rounds' waits only
        for round_number in range(args.rounds):
            for name, measure in layers.items():
                figures[name].append(measure())
            print(f"... round {round_number + 1} done", flush=True)
    finally:
        for each in started:
            os.kill(each.parts[0].pid, signal.SIGINT)
            each.parts[0].wait(30)
    ceiling = statistics.median(speed for speed, _ in figures[next(iter(layers))])
    print(
        f"\nmodel: {args.model_path or 'bundled palestra-tiny'}, {clients} clients, "
        f"{requests} requests of {tokens} new tokens, {cores} cores, {args.rounds} rounds"
    )
    print(
        "| layer | tok/s (median) | each round | of raw, all threads | decode step "
        "| p50 TTFT (median) | TTFT in steps |"
    )
    print("|---|---|---|---|---|---|---|")
    for name, values in figures.items():
        speed = statistics.median(v for v, _ in values)
        rounds = " / ".join(f"{v:.0f}" for v, _ in values)
        step = clients / speed  # seconds a decode step of the whole batch takes, at most
        firsts = [ttft for _, ttft in values if ttft is not None]
        ttft = f"{1000 * statistics.median(firsts):.0f} ms" if firsts else ""
        in_steps = f"{statistics.median(firsts) / step:.1f}" if firsts else ""
        print(
            f"| {name} | {speed:.0f} | {rounds} | {speed / ceiling:.2f} | "
            f"{1000 * step:.1f} ms | {ttft} | {in_steps} |"
        )
    print("\nOpenAI API layer, mean wait for the first token (median of the rounds), in ms:")
    print(
        "| server | client | API server | worker | client to API handler and back "
        "| API to worker and back |"
    )
    print("|---|---|---|---|---|---|")
    for each in started:
        client, api_server, in_worker = (
            statistics.median(w) for w in (each.waits.client, each.waits.api_server,
                                           each.waits.worker)
        )  # fmt: skip
        print(
            f"| {' '.join(each.flags) or 'default'} | {1000 * client:.1f} "
            f"| {1000 * api_server:.1f} | {1000 * in_worker:.1f} "
            f"| {1000 * (client - api_server):.1f} | {1000 * (api_server - in_worker):.1f} |"
        )


@dataclass
class Server:
    """A `palestra serve` under test: its process, API base, model, worker address and
    the first-token waits of its API layer."""

    parts: tuple[subprocess.Popen[bytes], str, str, str]
    flags: list[str]
    waits: FirstTokenWaits

    @classmethod
    def start(cls, model_path: str | None, flags: list[str]) -> Server:
        worker_port = throughput_table.free_port()
        server, base, model = throughput_table.start_server(
            model_path, extra=flags, worker_port=worker_port
        )
        return cls(
            (server, base, model, f"http://127.0.0.1:{worker_port}"), flags, FirstTokenWaits()
        )


@dataclass
class FirstTokenWaits:
    """Mean waits for the first token in the API layer's rounds, in seconds, as timed by
    the client, by the API server from its handler and by the worker from its handler."""

    client: list[float] = field(default_factory=list)
    api_server: list[float] = field(default_factory=list)
    worker: list[float] = field(default_factory=list)

    def clear(self) -> None:
        for waits in (self.client, self.api_server, self.worker):
            waits.clear()


def first_token_totals(server: str, prefix: str) -> tuple[float, float]:
    """(sum of seconds, count) of a server's time-to-first-token histogram."""
    text = httpx.get(f"{server}/metrics", timeout=10).text
    totals = {}
    for suffix in ("sum", "count"):
        name = f"{prefix}_time_to_first_token_seconds_{suffix} "
        totals[suffix] = sum(float(line.split()[-1]) for line in text.splitlines()
                             if line.startswith(name))  # fmt: skip
    return totals["sum"], totals["count"]


def api(
    servers: tuple[str, str], model: str, clients: int, requests: int, tokens: int,
    waits: FirstTokenWaits,
) -> tuple[float, float]:  # fmt: skip
    """The load through the OpenAI API (serve_throughput's client); `servers` are the
    API server's and the worker's addresses, whose /metrics split the first token's wait."""
    base, worker = servers
    before = first_token_totals(base, "palestra_api"), first_token_totals(worker, "palestra_worker")
    row = asyncio.run(serve_throughput.level(f"{base}/v1", model, clients, requests, tokens, "-"))
    after = first_token_totals(base, "palestra_api"), first_token_totals(worker, "palestra_worker")
    (api_sum, api_count), (worker_sum, worker_count) = (
        (a[0] - b[0], a[1] - b[1]) for a, b in zip(after, before, strict=True)
    )
    waits.client.append(row["mean_ttft"])
    waits.api_server.append(api_sum / max(api_count, 1))
    waits.worker.append(worker_sum / max(worker_count, 1))
    return row["tokens_per_s"], row["p50_ttft"]


if __name__ == "__main__":
    main()
