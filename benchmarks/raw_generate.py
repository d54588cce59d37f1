"""The ceiling for serving: the same model's plain `model.generate`, greedy, at batch 1 and
batch 16, generating exactly --max-tokens new tokens per sequence.

    python benchmarks/raw_generate.py [--model-path PATH] [--batch-sizes 1,16] [--max-tokens 64]
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Any

PROMPT = "Hello! Who are you?"


def measure(
    model_path: str | None, batch_sizes: list[int], max_tokens: int, repeats: int
) -> dict[int, float]:
    """Greedy `model.generate` tokens/s per batch size (median of `repeats` after a warm-up)."""
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
    return {
        batch: speed(model, tokenizer, prompt, batch, max_tokens, repeats) for batch in batch_sizes
    }


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model-path", default=None, help="default: the bundled model")
    parser.add_argument("--batch-sizes", default="1,16")
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    import torch

    sizes = [int(b) for b in args.batch_sizes.split(",")]
    print(
        f"model: {args.model_path or 'bundled'}  threads: {torch.get_num_threads()}  "
        f"new tokens: {args.max_tokens}"
    )
    for batch in sizes:
        speed = measure(args.model_path, [batch], args.max_tokens, args.repeats)[batch]
        print(f"batch {batch:>3}: {speed:8.1f} tokens/s", flush=True)


if __name__ == "__main__":
    main()
