"""Throughput and latency of any OpenAI-compatible server (Palestra's or another), by
concurrency level: requests/s, generated tokens/s, p50/p95 latency and time to first token.

    python benchmarks/serve_throughput.py --base-url http://127.0.0.1:8000/v1 \\
        --model palestra-tiny --concurrency 1,4,16,64 --max-tokens 64

Each level sends a fixed number of streamed chat requests (bounded in count and time);
each request asks for exactly --max-tokens new tokens (ignore_eos where the server takes it).
The client is aiohttp, as in vLLM's serving benchmark: it shares the machine's cores with the
server, and httpx would spend about three times its CPU per streamed event.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from collections.abc import AsyncIterator, Callable

import aiohttp


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


async def one_request(
    session: aiohttp.ClientSession,
    url: str,
    body: dict,
    count_tokens: Callable[[str], int] | None = None,
) -> tuple[float, float, int] | None:
    """(latency, time to first token, tokens), or None when the server refused (429).
    The tokens are the stream's usage; a server that sends none is counted by
    `count_tokens` on the text (FastChat streams two tokens per delta), else a token
    per delta (llama_cpp.server)."""
    started = time.perf_counter()
    first = None
    tokens = deltas = 0
    text: list[str] = []
    async with session.post(url, json=body) as response:
        if response.status == 429:
            await response.read()
            return None
        response.raise_for_status()
        async for line in sse_lines(response.content):
            if not line.startswith(b"data: ") or line == b"data: [DONE]":
                continue
            data = json.loads(line[6:])
            if "error" in data:
                raise RuntimeError(data["error"]["message"])
            if data.get("usage"):
                tokens = data["usage"]["completion_tokens"]
            for choice in data.get("choices", []):
                if content := choice.get("delta", {}).get("content"):
                    deltas += 1
                    text.append(content)
                    if first is None:
                        first = time.perf_counter() - started
    if not tokens:
        tokens = count_tokens("".join(text)) if count_tokens else deltas
    return time.perf_counter() - started, first or 0.0, tokens


async def sse_lines(content: aiohttp.StreamReader) -> AsyncIterator[bytes]:
    """The lines of an event stream, whatever their length."""
    pending = b""
    async for data in content.iter_any():
        *complete, pending = (pending + data).split(b"\n")
        for line in complete:
            yield line.rstrip(b"\r")
    if pending:
        yield pending


async def level(
    base_url: str,
    model: str,
    concurrency: int,
    requests: int,
    max_tokens: int,
    api_key: str,
    extra_body: dict | None = None,
    count_tokens: Callable[[str], int] | None = None,
) -> dict[str, float]:
    body = {
        **(extra_body or {}),
        "model": model,
        "max_tokens": max_tokens,
        "temperature": 0,
        "stream": True,
        "ignore_eos": True,
        "stream_options": {"include_usage": True},
        "messages": [{"role": "user", "content": "Hello! Who are you?"}],
    }
    headers = {"authorization": f"Bearer {api_key}"}
    results: list[tuple[float, float, int]] = []
    refused = 0
    queue: asyncio.Queue[int] = asyncio.Queue()
    for index in range(requests):
        queue.put_nowait(index)

    async def client_loop(session: aiohttp.ClientSession) -> None:
        while not queue.empty():
            queue.get_nowait()
            url = f"{base_url}/chat/completions"
            result = await one_request(session, url, body, count_tokens)
            if result is None:
                nonlocal refused
                refused += 1
            else:
                results.append(result)

    connector = aiohttp.TCPConnector(limit=concurrency + 4)
    timeout = aiohttp.ClientTimeout(total=600)
    async with aiohttp.ClientSession(
        connector=connector, headers=headers, timeout=timeout
    ) as session:
        started = time.perf_counter()
        await asyncio.gather(*(client_loop(session) for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    latencies = [r[0] for r in results]
    ttfts = [r[1] for r in results]
    return {
        "concurrency": concurrency,
        "requests": len(results),
        "refused": refused,
        "req_per_s": len(results) / elapsed,
        "tokens_per_s": sum(r[2] for r in results) / elapsed,
        "p50_latency": percentile(latencies, 0.5),
        "p95_latency": percentile(latencies, 0.95),
        "p50_ttft": percentile(ttfts, 0.5),
        "p95_ttft": percentile(ttfts, 0.95),
        "mean_ttft": statistics.mean(ttfts) if ttfts else 0.0,
        "mean_tokens": statistics.mean(r[2] for r in results),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base-url", default="http://127.0.0.1:8000/v1")
    parser.add_argument("--model", default="palestra-tiny")
    parser.add_argument("--concurrency", default="1,4,16,64")
    parser.add_argument(
        "--requests-per-level", type=int, default=0, help="default: max(8, 2 x concurrency)"
    )
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--api-key", default="unused")
    args = parser.parse_args()
    print(
        f"{'conc':>4} {'reqs':>5} {'req/s':>7} {'tok/s':>8} {'p50 lat':>8} {'p95 lat':>8} "
        f"{'p50 ttft':>9} {'p95 ttft':>9} {'refused (429)':>14}"
    )
    for concurrency in (int(c) for c in args.concurrency.split(",")):
        count = args.requests_per_level or max(8, 2 * concurrency)
        row = asyncio.run(
            level(args.base_url, args.model, concurrency, count, args.max_tokens, args.api_key)
        )
        print(
            f"{concurrency:>4} {row['requests']:>5} {row['req_per_s']:>7.2f} "
            f"{row['tokens_per_s']:>8.1f} {row['p50_latency']:>7.2f}s {row['p95_latency']:>7.2f}s "
            f"{row['p50_ttft']:>8.3f}s {row['p95_ttft']:>8.3f}s {row['refused']:>14}",
            flush=True,
        )


if __name__ == "__main__":
    main()
