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
- OpenAI API: that load through `palestra serve`'s /v1/chat/completions (streamed SSE).

Comparing neighbours says what each layer costs: the client pattern (continuous batching),
the worker's HTTP path, the API server's hop.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import statistics
import time

import aiohttp
import serve_throughput
import throughput_table

PROMPT = "Hello! Who are you?"  # serve_throughput's prompt


def load_backend(model_path: str | None) -> object:
    from palestra.backends.hf.cpu_threads import load_torch_teamless

    load_torch_teamless()  # as `palestra worker` does: the engine thread owns the threads
    from transformers.utils import logging as hf_logging

    from palestra.backends.hf.backend import HFBackend

    hf_logging.set_verbosity_error()
    return HFBackend.load(model_path, device="cpu")


def raw(backend: object, clients: int, max_tokens: int, threads: int) -> float:
    """`model.generate` tokens/s at batch `clients` on `threads` torch threads (the median
    of 3 runs: one run is as short as one wave of the other layers)."""
    import torch

    from palestra.core.types import Message

    tokenizer = backend.tokenizer  # type: ignore[attr-defined]
    tokenizer.padding_side = "left"
    prompt = backend.chat_prompt([Message("user", PROMPT)])  # type: ignore[attr-defined]
    encoded = tokenizer(
        [prompt] * clients, return_tensors="pt", add_special_tokens=False, padding=True
    )
    torch.set_num_threads(threads)
    speeds = []
    for _ in range(3):
        started = time.perf_counter()
        with torch.inference_mode():
            backend.model.generate(  # type: ignore[attr-defined]
                **encoded,
                max_new_tokens=max_tokens,
                min_new_tokens=max_tokens,
                do_sample=False,
                pad_token_id=tokenizer.pad_token_id,
            )
        speeds.append(clients * max_tokens / (time.perf_counter() - started))
    torch.set_num_threads(1)  # the main thread's team rests while the other layers run
    return statistics.median(speeds)


async def engine(
    backend: object, clients: int, requests: int, max_tokens: int, together: bool
) -> float:
    """The in-process backend's tokens/s: `clients` requests at once, or `clients` loops."""
    from palestra.core.types import GenerationRequest, Message, SamplingParams

    prompt = backend.chat_prompt([Message("user", PROMPT)])  # type: ignore[attr-defined]
    sampling = SamplingParams(temperature=0, max_tokens=max_tokens, ignore_eos=True)
    tokens = 0

    async def one() -> None:
        nonlocal tokens
        request = GenerationRequest(prompt, sampling)
        async for chunk in backend.generate(request):  # type: ignore[attr-defined]
            tokens += len(chunk.token_ids)

    started = time.perf_counter()
    if together:
        await asyncio.gather(*(one() for _ in range(clients)))
    else:
        await loops(clients, requests, one)
    return tokens / (time.perf_counter() - started)


async def loops(clients: int, requests: int, send: object) -> None:
    """`clients` loops sending `requests` in all, each the next when its last one ends."""
    left = [requests]

    async def loop() -> None:
        while left[0] > 0:
            left[0] -= 1
            await send()  # type: ignore[operator]

    await asyncio.gather(*(loop() for _ in range(clients)))


async def worker_http(
    worker: str, model: str, clients: int, requests: int, max_tokens: int
) -> float:
    """Tokens/s of the load against the worker's /generate stream."""
    body = {
        "model": model,
        "messages": [{"role": "user", "content": PROMPT}],
        "sampling": {"temperature": 0, "max_tokens": max_tokens, "ignore_eos": True},
    }
    tokens = 0
    connector = aiohttp.TCPConnector(limit=clients + 4)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def one() -> None:
            nonlocal tokens
            async with session.post(f"{worker}/generate", json=body) as response:
                response.raise_for_status()
                async for line in serve_throughput.sse_lines(response.content):
                    if line:
                        message = json.loads(line)
                        if "error" in message:
                            raise RuntimeError(message["error"]["message"])
                        tokens += len(message.get("token_ids", ()))

        started = time.perf_counter()
        await loops(clients, requests, one)
    return tokens / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model-path", default=None, help="default: the bundled model")
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--requests", type=int, default=0, help="default: 4 per client")
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    clients, tokens = args.clients, args.max_tokens
    requests = args.requests or 4 * clients
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()

    backend = load_backend(args.model_path)
    worker_port = throughput_table.free_port()
    server, base, model = throughput_table.start_server(args.model_path, worker_port=worker_port)
    worker = f"http://127.0.0.1:{worker_port}"
    layers = {
        f"raw, all threads ({cores})": lambda: raw(backend, clients, tokens, cores or 1),
        "raw, one thread": lambda: raw(backend, clients, tokens, 1),
        "engine, together": lambda: asyncio.run(engine(backend, clients, 0, tokens, True)),
        "engine, clients": lambda: asyncio.run(engine(backend, clients, requests, tokens, False)),
        "worker HTTP": lambda: asyncio.run(worker_http(worker, model, clients, requests, tokens)),
        "OpenAI API": lambda: asyncio.run(
            serve_throughput.level(base, model, clients, requests, tokens, "unused")
        )["tokens_per_s"],
    }
    figures: dict[str, list[float]] = {name: [] for name in layers}
    try:
        for measure in layers.values():  # warm-up: first calls, caches, the server's pool
            measure()
        for round_number in range(args.rounds):
            for name, measure in layers.items():
                figures[name].append(measure())
            print(f"... round {round_number + 1} done", flush=True)
    finally:
        os.kill(server.pid, signal.SIGINT)
        server.wait(30)
    ceiling = statistics.median(figures[next(iter(layers))])
    print(
        f"\nmodel: {args.model_path or 'bundled palestra-tiny'}, {clients} clients, "
        f"{requests} requests of {tokens} new tokens, {cores} cores, {args.rounds} rounds"
    )
    print("| layer | tok/s (median) | each round | of raw, all threads |")
    print("|---|---|---|---|")
    for name, values in figures.items():
        middle = statistics.median(values)
        rounds = " / ".join(f"{v:.0f}" for v in values)
        print(f"| {name} | {middle:.0f} | {rounds} | {middle / ceiling:.2f} |")


if __name__ == "__main__":
    main()
