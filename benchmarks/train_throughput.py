"""Supervised fine-tuning speed with and without packing, same data, same model, same run:
one epoch through `run_sft` each way, so both process exactly the same real tokens.

    python benchmarks/train_throughput.py [--model-path PATH] [--conversations 400]

The data are Palestra Tiny's generated conversations: short chats of very different
lengths, where padding wastes the most.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model-path", default=None, help="default: the bundled model")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--max-length", type=int, default=512)
    parser.add_argument("--conversations", type=int, default=400)
    args = parser.parse_args()

    from palestra.tinymodel.corpus import training_conversations
    from palestra.train.sft import SFTConfig, run_sft

    work = Path(tempfile.mkdtemp())
    source = training_conversations(11)
    data = work / "data.jsonl"
    data.write_text(
        "\n".join(json.dumps({"messages": next(source)}) for _ in range(args.conversations))
    )
    print(f"model: {args.model_path or 'bundled'}; one epoch, batch {args.batch_size}")
    for packing in (False, True):
        config = SFTConfig(
            data=str(data), out=str(work / f"out-{packing}"), model_path=args.model_path,
            max_length=args.max_length, epochs=1, batch_size=args.batch_size,
            packing=packing, logging_steps=10**6, save_steps=10**9, device="cpu",
            learning_rate=1e-4,
        )  # fmt: skip
        started = time.perf_counter()
        result = run_sft(config)
        elapsed = time.perf_counter() - started
        report = result.train_report
        print(
            f"packing={'on ' if packing else 'off'}: {result.steps:4d} steps, {elapsed:6.1f} s, "
            f"{report.tokens / elapsed:8.0f} tokens/s, {report.trained_tokens / elapsed:8.0f} "
            f"trained tokens/s ({report.examples} examples, {report.tokens} tokens)",
            flush=True,
        )


if __name__ == "__main__":
    main()
