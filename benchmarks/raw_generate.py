"""The ceilings for serving: the same model's plain `model.generate`, greedy, and llama.cpp's
own batched decode loop on a GGUF of it, at batch 1 and batch 16, generating exactly
--max-tokens new tokens per sequence, on torch's threads or --threads.

    python benchmarks/raw_generate.py [--model-path PATH] [--batch-sizes 1,16] [--max-tokens 64]
        [--threads N]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

PROMPT = "Hello! Who are you?"


def measure(
    model_path: str | None,
    batch_sizes: list[int],
    max_tokens: int,
    repeats: int,
    threads: int | None = None,
) -> dict[int, float]:
    """Greedy `model.generate` tokens/s per batch size (median of `repeats` after a warm-up),
    on `threads` torch threads (default: torch's own count)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    from palestra.models.inspect import resolve_model_path

    hf_logging.set_verbosity_error()
    path = resolve_model_path(model_path)
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path).eval()
    prompt = tokenizer.apply_chat_template(
        [{"role": "user", "content": PROMPT}], tokenize=False, add_generation_prompt=True
    )
    with torch_threads(threads):
        return {
            batch: speed(model, tokenizer, prompt, batch, max_tokens, repeats)
            for batch in batch_sizes
        }


@contextmanager
def torch_threads(threads: int | None) -> Iterator[None]:
    """torch on `threads` threads inside the block (None: as it is), as it was after."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(threads or before)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def speed(
    model: Any, tokenizer: Any, prompt: str, batch: int, max_tokens: int, repeats: int
) -> float:
    """Greedy `model.generate` tokens/s of `batch` copies of `prompt`, exactly `max_tokens`
    new tokens each (median of `repeats` after a warm-up), on torch's current threads."""
    import torch

    tokenizer.padding_side = "left"
    encoded = tokenizer(
        [prompt] * batch, return_tensors="pt", add_special_tokens=False, padding=True
    )
    timings = []
    for _ in range(repeats + 1):  # the first is a warm-up
        started = time.perf_counter()
        with torch.inference_mode():
            model.generate(
                **encoded,
                max_new_tokens=max_tokens,
                min_new_tokens=max_tokens,
                do_sample=False,
                pad_token_id=tokenizer.pad_token_id,
            )
        timings.append(time.perf_counter() - started)
    return batch * max_tokens / statistics.median(timings[1:])


def measure_llamacpp(
    gguf: Path, batch_sizes: list[int], max_tokens: int, threads: int | None = None
) -> dict[int, float]:
    """llama.cpp's own batched decode speed: one context, `batch` sequences, one
    `llama_decode` per step and a plain argmax, no server (as llama-batched-bench), on
    `threads` threads (default: every core)."""
    import numpy as np
    from llama_cpp import Llama
    from llama_cpp import llama_cpp as b

    llm = Llama(model_path=str(gguf), n_ctx=64, verbose=False)
    prompt = llm.tokenize(b"Hello! Who are you?", add_bos=True)
    vocab = b.llama_vocab_n_tokens(b.llama_model_get_vocab(llm.model))
    speeds = {}
    for batch_size in batch_sizes:
        params = b.llama_context_default_params()
        params.n_seq_max = batch_size
        params.n_ctx = batch_size * (len(prompt) + max_tokens + 16)
        params.n_batch = max(512, batch_size * len(prompt))
        params.n_threads = params.n_threads_batch = threads or os.cpu_count() or 1
        params.kv_unified = False
        ctx = b.llama_init_from_model(llm.model, params)
        batch = b.llama_batch_init(params.n_batch, 0, 1)

        started = time.perf_counter()
        decode(ctx, batch, [(t, p, s, p == len(prompt) - 1) for s in range(batch_size)
                for p, t in enumerate(prompt)])  # fmt: skip
        rows = [len(prompt) * (s + 1) - 1 for s in range(batch_size)]
        for step in range(max_tokens - 1):
            tokens = [
                int(np.ctypeslib.as_array(b.llama_get_logits_ith(ctx, r), (vocab,)).argmax())
                for r in rows
            ]
            decode(ctx, batch, [(t, len(prompt) + step, s, True) for s, t in enumerate(tokens)])
            rows = list(range(batch_size))
        speeds[batch_size] = batch_size * max_tokens / (time.perf_counter() - started)
        b.llama_batch_free(batch)
        b.llama_free(ctx)
    return speeds


def decode(ctx: Any, batch: Any, entries: list[tuple[int, int, int, bool]]) -> None:
    """One `llama_decode` of (token, position, sequence, wants logits) entries."""
    from llama_cpp import llama_cpp as b

    for i, (token, pos, seq, logits) in enumerate(entries):
        batch.token[i], batch.pos[i], batch.n_seq_id[i] = token, pos, 1
        batch.seq_id[i][0], batch.logits[i] = seq, logits
    batch.n_tokens = len(entries)
    assert b.llama_decode(ctx, batch) == 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model-path", default=None, help="default: the bundled model")
    parser.add_argument("--batch-sizes", default="1,16")
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None, help="default: torch's count")
    args = parser.parse_args()

    import torch

    sizes = [int(b) for b in args.batch_sizes.split(",")]
    print(
        f"model: {args.model_path or 'bundled'}  threads: {args.threads or torch.get_num_threads()}"
        f"  new tokens: {args.max_tokens}"
    )
    for batch in sizes:
        speeds = measure(args.model_path, [batch], args.max_tokens, args.repeats, args.threads)
        print(f"batch {batch:>3}: {speeds[batch]:8.1f} tokens/s", flush=True)


if __name__ == "__main__":
    main()
