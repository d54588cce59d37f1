"""Exact-answer evaluation of a chat model folder on Palestra Tiny's held-out questions.

    python -m palestra.tinymodel.evaluate src/palestra/bundled/tiny-chat

Greedy decoding through plain `transformers`; prints accuracy overall and per category.
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path
from typing import Any


def evaluate_model(model_dir: Path, batch_size: int = 32) -> dict[str, Any]:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from palestra.tinymodel.corpus import evaluation_items

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    tokenizer.padding_side = "left"
    model = AutoModelForCausalLM.from_pretrained(model_dir).eval()
    items = evaluation_items()
    replies: list[str] = []
    with torch.inference_mode():
        for start in range(0, len(items), batch_size):
            chunk = items[start : start + batch_size]
            prompts = [
                tokenizer.apply_chat_template(
                    i.messages, tokenize=False, add_generation_prompt=True
                )
                for i in chunk
            ]
            encoded = tokenizer(
                prompts, return_tensors="pt", padding=True, add_special_tokens=False
            )
            output = model.generate(**encoded, max_new_tokens=48, do_sample=False)
            new_tokens = output[:, encoded["input_ids"].shape[1] :]
            replies += tokenizer.batch_decode(new_tokens, skip_special_tokens=True)
    per_category: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    failures = []
    for item, reply in zip(items, replies, strict=True):
        ok = item.passes(reply)
        per_category[item.category][0] += int(ok)
        per_category[item.category][1] += 1
        if not ok:
            failures.append(
                {
                    "question": item.messages[-1]["content"],
                    "expected": item.expected,
                    "reply": reply,
                }
            )
    correct = sum(c for c, _ in per_category.values())
    return {
        "accuracy": round(correct / len(items), 4),
        "correct": correct,
        "total": len(items),
        "per_category": {k: f"{c}/{n}" for k, (c, n) in sorted(per_category.items())},
        "failures": failures,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model_dir", type=Path)
    args = parser.parse_args()
    report = evaluate_model(args.model_dir)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
