"""A ~50M-parameter Llama built the way Palestra Tiny is (same tokenizer, same chat
template, `palestra.tinymodel.build.make_model`), with random weights: a model big enough
that forward passes, not Python, dominate a decode step. For speed measurements only. The
tokenizer's files are the bundled model's own, so older transformers (FastChat's) read
them too.

    python benchmarks/build_bench_model.py [--out /tmp/palestra-bench-50m]
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="/tmp/palestra-bench-50m")
    parser.add_argument("--hidden", type=int, default=640)
    parser.add_argument("--layers", type=int, default=10)
    parser.add_argument("--heads", type=int, default=10)
    args = parser.parse_args()

    import torch
    from transformers import AutoTokenizer

    from palestra.models.inspect import bundled_model_path
    from palestra.tinymodel.build import make_model

    torch.manual_seed(0)
    bundled = Path(bundled_model_path())
    tokenizer = AutoTokenizer.from_pretrained(bundled)
    model = make_model(tokenizer, args.hidden, args.layers, args.heads)
    model.save_pretrained(args.out)
    for name in TOKENIZER_FILES:
        shutil.copy(bundled / name, Path(args.out) / name)
    params = sum(p.numel() for p in model.parameters())
    print(f"{args.out}: {params / 1e6:.1f}M parameters")


if __name__ == "__main__":
    main()
