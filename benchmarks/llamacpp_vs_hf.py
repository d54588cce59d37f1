"""The llama.cpp backend against the transformers backend on the same model: the folder
is converted to GGUF (f32 by default, so both compute in the same precision), each is
served by `palestra serve`, and both are measured at 1 and 16 clients in one run.

    python benchmarks/llamacpp_vs_hf.py [--model-path DIR] [--outtype f32] [--parallel 2]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
import tempfile
from pathlib import Path

import serve_throughput
from throughput_table import start_server


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model-path", default=None, help="default: the bundled model")
    parser.add_argument("--outtype", default="f32")
    parser.add_argument("--parallel", type=int, default=2)
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--requests", type=int, default=32)
    args = parser.parse_args()

    from palestra.backends.llamacpp.convert import convert_to_gguf
    from palestra.models.inspect import resolve_model_path

    folder = resolve_model_path(args.model_path)
    gguf = Path(tempfile.mkdtemp()) / f"model-{args.outtype}.gguf"
    convert_to_gguf(folder, gguf, args.outtype)
    rows: dict[tuple[str, int], dict[str, float]] = {}
    for backend, path in (("hf", folder), ("llamacpp", str(gguf))):
        server, base, model = start_server(path, backend, ["--parallel", str(args.parallel)])
        try:
            for clients in (1, 16):
                rows[backend, clients] = asyncio.run(
                    serve_throughput.level(
                        base, model, clients, max(args.requests, clients), args.max_tokens, "x"
                    )
                )
                print(f"... {backend} {clients} client(s) done", file=sys.stderr, flush=True)
        finally:
            os.kill(server.pid, signal.SIGINT)
            server.wait(30)
    print(
        f"\nmodel: {folder} ({args.outtype} GGUF, --parallel {args.parallel}), "
        f"{args.max_tokens} new tokens"
    )
    print(
        "| clients | transformers tok/s | llama.cpp tok/s | llama.cpp / transformers "
        "| p50 TTFT hf | p50 TTFT llama.cpp |"
    )
    print("|---|---|---|---|---|---|")
    for clients in (1, 16):
        hf, cpp = rows["hf", clients], rows["llamacpp", clients]
        print(
            f"| {clients} | {hf['tokens_per_s']:.1f} | {cpp['tokens_per_s']:.1f} | "
            f"{cpp['tokens_per_s'] / hf['tokens_per_s']:.2f} | {hf['p50_ttft'] * 1000:.0f} ms | "
            f"{cpp['p50_ttft'] * 1000:.0f} ms |"
        )


if __name__ == "__main__":
    main()
