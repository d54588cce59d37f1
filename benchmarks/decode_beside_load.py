"""Why a served engine cannot keep every core of a small machine: each engine's raw batched
decode (`model.generate`, and llama.cpp's own loop on a GGUF of the same model), on one
thread and on every core, alone and beside other busy processes (a pure-Python loop each,
standing in for the API server, the worker's event loop and the clients that a server
runs beside its engine).

A decode on several threads meets at a barrier after every operation, and its threads
spin there. When another process holds one of the cores, the thread it displaced misses
the barrier for a whole scheduler slice while the others spin, so the decode slows by far
more than the share of CPU it lost; on one thread there is no barrier to miss.

    python benchmarks/decode_beside_load.py [--model-path DIR] [--batch 16]
        [--max-tokens 64] [--busy 1] [--outtype f32]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import raw_generate

Speed = Callable[[int], float]  # tokens/s on this many threads


@contextmanager
def busy_processes(count: int) -> Iterator[None]:
    """`count` processes that keep a core each busy until the block ends."""
    spinners = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(count)]
    time.sleep(0.3)  # started and spinning
    try:
        yield
    finally:
        for spinner in spinners:
            spinner.kill()
            spinner.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model-path", default=None, help="default: the bundled model")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--busy", type=int, default=1, help="busy processes beside the decode")
    parser.add_argument("--outtype", default="f32", help="GGUF weights for the llama.cpp rows")
    args = parser.parse_args()

    from palestra.backends.llamacpp.convert import convert_to_gguf
    from palestra.models.inspect import resolve_model_path

    folder = resolve_model_path(args.model_path)
    gguf = Path(tempfile.mkdtemp()) / f"model-{args.outtype}.gguf"
    convert_to_gguf(folder, gguf, args.outtype)
    batch, tokens = args.batch, args.max_tokens
    engines: dict[str, Speed] = {
        "`model.generate`": lambda threads: raw_generate.measure(
            folder, [batch], tokens, 2, threads
        )[batch],
        "llama.cpp decode": lambda threads: raw_generate.measure_llamacpp(
            gguf, [batch], tokens, threads
        )[batch],
    }
    cores = os.cpu_count() or 1
    print(f"\nmodel: {args.model_path or 'bundled palestra-tiny'}, batch {batch}, {tokens} new")
    print(f"tokens, {cores} cores, {args.busy} busy process(es) beside the decode\n")
    print("| engine | threads | alone tok/s | beside busy tok/s | beside / alone |")
    print("|---|---|---|---|---|")
    for name, speed in engines.items():
        for threads in sorted({1, cores}):
            print(f"... {name}, {threads} thread(s)", file=sys.stderr)
            alone = speed(threads)
            with busy_processes(args.busy):
                beside = speed(threads)
            print(f"| {name} | {threads} | {alone:.0f} | {beside:.0f} | {beside / alone:.2f} |")


if __name__ == "__main__":
    main()
