"""The whole serving comparison in one run and one table: the raw ceilings (plain
`model.generate` at batch = clients, and llama.cpp's own batched decode loop on the same
GGUF, each on every core and on one thread), Palestra on transformers, Palestra on
llama.cpp, llama-cpp-python's OpenAI server (`llama_cpp.server`, when its `server` extra
is installed) and FastChat 0.2.36 (when a Python with it is given), at 1, 16 and 200
streaming clients. Every ratio comes from this one run: this machine's speed drifts, so
only figures measured together compare. Palestra's transformers rows also give the
engine's own mean decode step and prefill pass (its /health clock) and the first token
over one prefill plus two steps (goal 2).

    python benchmarks/serving_comparison.py [--model-path DIR] [--clients 1,16,200]
        [--max-tokens 64] [--outtype f32] [--fastchat-python /path/to/python]
        [--fastchat-template NAME]  # FastChat's template for the model (see below)
        [--stream-interval N]   # also Palestra with N tokens per streamed frame
        [--every-token]         # also Palestra with a frame per token (--stream-interval-ms 0)
        [--torch-compile]       # also Palestra's transformers engine with --torch-compile

Each server is started on free loopback ports with its defaults except what makes it
comparable (Palestra's llama.cpp backend and FastChat's worker may run --parallel /
--limit-worker-concurrency = the most clients), measured, and stopped. Requests ask for
exactly --max-tokens new tokens (ignore_eos, greedy).

FastChat 0.2.36 streams only with pydantic 1 (its API server calls `.json(ensure_ascii=)`),
has no ignore_eos (give it a model that never emits EOS, as the ~50M bench model), sends
no usage in a stream and two tokens per delta (its worker's --stream-interval), so its
tokens are counted by the model's tokenizer on the text. It picks a template by the
model's path: for a ChatML model it does not know by name (the bundled and bench models)
this script gives it `qwen-7b-chat`, ChatML; its default, `one_shot`, does not fit a
512-token context.

    python -m venv /tmp/fastchat && /tmp/fastchat/bin/pip install torch==2.13.0 \
        'fschat[model_worker]==0.2.36' 'transformers<4.47' 'pydantic<2' 'fastapi<0.100'
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import raw_generate
import serve_throughput
from throughput_table import engine_clock, free_port, start_server, step_and_prefill

Row = dict[str, float]


@dataclass(frozen=True)
class Ceiling:
    """An engine's raw tokens/s by batch size, on every core and on one thread."""

    every_core: dict[int, float]
    one_thread: dict[int, float]


def stop_token_ids(folder: str) -> list[int]:
    from palestra.backends.hf.backend import HFBackend

    return sorted(HFBackend.load(folder, device="cpu")._stop_ids)


def start_command(
    command: list[str],
    base: str,
    what: str,
    behind: subprocess.Popen[bytes] | None = None,
    env: dict[str, str] | None = None,
) -> subprocess.Popen[bytes]:
    """Start a server and wait until it lists a model; `behind`: a process it needs (a
    model worker), whose exit fails the start too."""
    server = subprocess.Popen(
        command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env
    )
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        try:
            if httpx.get(base + "/models", timeout=2).json().get("data"):
                return server
        except (httpx.HTTPError, ValueError):
            pass
        for process in (server, behind):
            if process is not None and process.poll() is not None:
                server.kill()
                raise SystemExit(
                    f"{what} exited with {process.returncode}: {' '.join(map(str, process.args))}"
                )
        time.sleep(0.5)
    server.kill()
    raise SystemExit(f"{what} did not come up within 240 s")


def fastchat(
    python: str, model: str, most: int, template: str | None
) -> tuple[list[subprocess.Popen[bytes]], str]:
    controller, worker, api = free_port(), free_port(), free_port()
    chosen = ["--conv-template", template] if template else []
    address = f"http://127.0.0.1:{controller}"
    logs = Path(tempfile.mkdtemp())  # FastChat writes its own logs into $LOGDIR too
    log = logs / "fastchat-worker.log"
    env = {**os.environ, "LOGDIR": str(logs)}
    with log.open("wb") as worker_log:
        started = [
            subprocess.Popen([python, "-m", "fastchat.serve.controller", "--port", str(controller)],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env),
            subprocess.Popen([python, "-m", "fastchat.serve.model_worker", "--model-path", model,
                              "--device", "cpu", "--port", str(worker), "--controller-address",
                              address, "--worker-address", f"http://127.0.0.1:{worker}",
                              "--limit-worker-concurrency", str(most), *chosen],
                             stdout=subprocess.DEVNULL, stderr=worker_log, env=env),
        ]  # fmt: skip
    base = f"http://127.0.0.1:{api}/v1"
    command = [python, "-m", "fastchat.serve.openai_api_server", "--port", str(api),
               "--controller-address", address]  # fmt: skip
    try:
        started.append(start_command(command, base, "FastChat", behind=started[1], env=env))
    except BaseException:
        stop(started)
        print(f"... FastChat's model worker logged to {log}", file=sys.stderr)
        raise
    return started, base


def measure(
    base: str,
    model: str,
    clients: list[int],
    max_tokens: int,
    extra: dict | None,
    clock: Callable[[], tuple[int, float, int, float]] | None,
    count_tokens: Callable[[str], int] | None = None,
) -> dict[int, Row]:
    """Each client count's row; with the engine's `clock`, its mean step and prefill too;
    `count_tokens` counts a reply's tokens where the server's stream has no usage."""
    rows = {}
    for count in clients:
        before = clock() if clock else None
        rows[count] = asyncio.run(
            serve_throughput.level(
                base, model, count, max(32, count), max_tokens, "x", extra, count_tokens
            )
        )
        if clock and before:
            rows[count]["step"], rows[count]["prefill"] = step_and_prefill(before, clock())
        print(f"...   {count} client(s): {rows[count]['tokens_per_s']:.0f} tok/s", file=sys.stderr)
    return rows


def stop(servers: list[subprocess.Popen[bytes]]) -> None:
    for server in reversed(servers):
        if server.poll() is None:
            os.kill(server.pid, signal.SIGINT)
            try:
                server.wait(30)
            except subprocess.TimeoutExpired:
                server.kill()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model-path", default=None, help="default: the bundled model")
    parser.add_argument("--clients", default="1,16,200")
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--outtype", default="f32", help="GGUF weights for the llama.cpp rows")
    parser.add_argument("--fastchat-python", default=None, help="a Python with fschat 0.2.36")
    parser.add_argument(
        "--fastchat-template",
        default=None,
        help="FastChat's --conv-template (default: qwen-7b-chat for a ChatML model, else "
        "FastChat's choice by the model's path)",
    )
    parser.add_argument(
        "--stream-interval",
        type=int,
        default=0,
        help="also run Palestra's engines with this many tokens per streamed frame",
    )
    parser.add_argument(
        "--every-token",
        action="store_true",
        help="also run Palestra's engines with a frame per token (--stream-interval-ms 0)",
    )
    parser.add_argument(
        "--torch-compile",
        action="store_true",
        help="also run Palestra's transformers engine with --torch-compile",
    )
    args = parser.parse_args()
    clients = [int(c) for c in args.clients.split(",")]
    most = max(clients)

    from palestra.backends.llamacpp.convert import convert_to_gguf
    from palestra.models.inspect import resolve_model_path

    folder = resolve_model_path(args.model_path)
    gguf = Path(tempfile.mkdtemp()) / f"model-{args.outtype}.gguf"
    convert_to_gguf(folder, gguf, args.outtype)

    print("... raw ceilings", file=sys.stderr)
    sizes = sorted(set(clients))
    raw = Ceiling(
        raw_generate.measure(folder, sizes, args.max_tokens, 2),
        raw_generate.measure(folder, sizes, args.max_tokens, 2, threads=1),
    )
    raw_cpp = Ceiling(
        raw_generate.measure_llamacpp(gguf, sizes, args.max_tokens),
        raw_generate.measure_llamacpp(gguf, sizes, args.max_tokens, threads=1),
    )

    results: dict[str, tuple[Ceiling, dict[int, Row]]] = {}  # name: (its raw, rows)

    def run(
        name: str,
        start: Callable[[], Any],
        ceiling: Ceiling,
        extra: dict | None = None,
        count_tokens: Callable[[str], int] | None = None,
    ) -> None:
        print(f"... {name}", file=sys.stderr)
        try:
            servers, base, model, clock = start()
        except SystemExit as failure:  # the other rows still print
            print(f"... {name} skipped: {failure}", file=sys.stderr)
            return
        try:
            rows = measure(base, model, clients, args.max_tokens, extra, clock, count_tokens)
            results[name] = ceiling, rows
        finally:
            stop(servers)

    def palestra(path: str, backend: str, extra: list[str]) -> Callable[[], Any]:
        def start() -> tuple[list[subprocess.Popen[bytes]], str, str, Any]:
            worker_port = free_port()
            server, base, model = start_server(path, backend, extra, worker_port)
            clock = (lambda: engine_clock(worker_port)) if backend == "hf" else None
            return [server], base, model, clock

        return start

    cpp_options = ["--parallel", str(most), "--context-length", "256"]
    pacings: list[list[str]] = [[]]  # the default: a frame per 20 ms at most
    if args.every_token:
        pacings.append(["--stream-interval-ms", "0"])
    if args.stream_interval > 1:
        pacings.append(["--stream-interval", str(args.stream_interval)])
    for paced in pacings:
        suffix = f", {' '.join(paced)}" if paced else ""
        run(f"Palestra, transformers{suffix}", palestra(folder, "hf", paced), raw)
        run(
            f"Palestra, llama.cpp{suffix}",
            palestra(str(gguf), "llamacpp", cpp_options + paced),
            raw_cpp,
        )
    if args.torch_compile:
        compiled = ["--torch-compile"]
        run("Palestra, transformers, --torch-compile", palestra(folder, "hf", compiled), raw)
    if importlib.util.find_spec("sse_starlette") and importlib.util.find_spec("starlette_context"):

        def llama_server() -> tuple[list[subprocess.Popen[bytes]], str, str, None]:
            port = free_port()
            base = f"http://127.0.0.1:{port}/v1"
            command = [
                sys.executable,
                "-m",
                "llama_cpp.server",
                "--model",
                str(gguf),
                "--port",
                str(port),
                "--n_ctx",
                "2048",
                "--model_alias",
                "m",
                "--interrupt_requests",
                "False",
            ]  # fmt: skip  (queue, not cut off)
            return [start_command(command, base, "llama_cpp.server")], base, "m", None

        # It has no ignore_eos: the stop tokens are banned instead.
        banned = {str(token): -100 for token in stop_token_ids(folder)}
        run("llama_cpp.server", llama_server, raw_cpp, {"logit_bias": banned})
    else:
        print(
            "... llama_cpp.server skipped: pip install 'llama-cpp-python[server]'", file=sys.stderr
        )
    if args.fastchat_python:
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(folder)
        template = args.fastchat_template
        if template is None and "<|im_start|>" in str(tokenizer.chat_template or ""):
            template = "qwen-7b-chat"

        def fastchat_server() -> tuple[list[subprocess.Popen[bytes]], str, str, None]:
            servers, base = fastchat(args.fastchat_python, folder, most, template)
            return servers, base, Path(folder).name, None

        def count_tokens(text: str) -> int:
            return len(tokenizer(text, add_special_tokens=False)["input_ids"])

        run("FastChat 0.2.36", fastchat_server, raw, count_tokens=count_tokens)

    print(f"\nmodel: {args.model_path or 'bundled palestra-tiny'} ({args.outtype} GGUF), "
          f"{args.max_tokens} new tokens, {os.cpu_count()} cores")  # fmt: skip
    print("(ratio: to the raw ceiling of the same engine at batch = clients, on every core, and")
    print("on one thread: beside serving work a decode cannot keep every core (see")
    print("decode_beside_load.py); step and prefill: the transformers engine's own mean decode")
    print("step and prefill pass in that load, and the p50 TTFT over one prefill plus two")
    print("steps, issue 19's bound)\n")
    print(
        "| clients | server | tok/s | ratio to raw | to raw on 1 thread | p50 TTFT | p95 TTFT "
        "| refused | step / prefill | TTFT / (prefill + 2 steps) |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for count in clients:
        for name, ceiling in (("raw `model.generate`", raw), ("raw llama.cpp decode", raw_cpp)):
            print(f"| {count} | {name} | {ceiling.every_core[count]:.1f} | 1.00 | | | | | | |")
            print(
                f"| {count} | {name}, 1 thread | {ceiling.one_thread[count]:.1f} | "
                f"{ceiling.one_thread[count] / ceiling.every_core[count]:.2f} | 1.00 | | | | | |"
            )
        for name, (ceiling, rows) in results.items():
            row = rows[count]
            clocked = "| | |"
            if "step" in row:
                bound = row["prefill"] + 2 * row["step"]
                clocked = (
                    f"| {row['step'] * 1000:.1f} / {row['prefill'] * 1000:.1f} ms | "
                    f"{row['p50_ttft'] / bound:.2f} |"
                )
            speed = row["tokens_per_s"]
            print(
                f"| {count} | {name} | {speed:.1f} | {speed / ceiling.every_core[count]:.2f} | "
                f"{speed / ceiling.one_thread[count]:.2f} | {row['p50_ttft'] * 1000:.0f} ms | "
                f"{row['p95_ttft'] * 1000:.0f} ms | {int(row['refused'])} {clocked}"
            )


if __name__ == "__main__":
    main()
