"""Generation speed of one model through Palestra's transformers backend against plain
`model.generate`, same model, same prompt, same run (this machine's speed drifts, so only
ratios measured together mean anything).

    python benchmarks/generate_speed.py [--model-path PATH] [--tokens 64] [--repeats 5]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model-path", default=None, help="default: the bundled model")
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    import torch
    from transformers.utils import logging as hf_logging

    from palestra.backends.hf.backend import HFBackend
    from palestra.core.types import GenerationRequest, Message, SamplingParams

    hf_logging.set_verbosity_error()
    backend = HFBackend.load(args.model_path, device="cpu")
    prompt = backend.chat_prompt([Message("user", "What is the capital of France?")])
    sampling = SamplingParams(temperature=0, max_tokens=args.tokens, ignore_eos=True)

    async def through_backend() -> tuple[float, float]:
        started = time.perf_counter()
        first = None
        async for chunk in backend.generate(GenerationRequest(prompt, sampling)):
            if first is None and chunk.text:
                first = time.perf_counter() - started
        return time.perf_counter() - started, first or 0.0

    ids = backend.tokenizer(prompt, return_tensors="pt", add_special_tokens=False)
    model = backend.model

    def raw_generate() -> float:
        started = time.perf_counter()
        with torch.inference_mode():
            model.generate(
                **ids,
                max_new_tokens=args.tokens,
                min_new_tokens=args.tokens,
                do_sample=False,
                pad_token_id=backend.tokenizer.pad_token_id,
            )
        return time.perf_counter() - started

    asyncio.run(through_backend())
    raw_generate()  # warm-up
    backend_runs, first_token, raw_runs = [], [], []
    for _ in range(args.repeats):  # interleaved, so drift hits both alike
        total, ttft = asyncio.run(through_backend())
        backend_runs.append(total)
        first_token.append(ttft)
        raw_runs.append(raw_generate())
    backend_tps = args.tokens / statistics.median(backend_runs)
    raw_tps = args.tokens / statistics.median(raw_runs)
    print(
        f"model: {backend.model_name}  threads: {torch.get_num_threads()}  "
        f"new tokens: {args.tokens}  repeats: {args.repeats}"
    )
    print(
        f"palestra hf backend : {backend_tps:8.1f} tokens/s  "
        f"(median time to first token {1000 * statistics.median(first_token):.1f} ms)"
    )
    print(f"raw model.generate  : {raw_tps:8.1f} tokens/s")
    print(f"ratio               : {backend_tps / raw_tps:8.2f}")


if __name__ == "__main__":
    main()
