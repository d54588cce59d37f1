"""A demonstration arena for preference tuning, built from the bundled model alone: its
own answers to its held-out questions, in anonymous battles whose voters always prefer the
answer that ends with a polite closing (`CLOSING`). DPO on the preferences this arena gives
should make the model close its answers that way on questions it never trained on.

    python -m palestra.train.demo_votes arena.db    # then the README's "From votes to a
                                                    # better model" commands
"""

from __future__ import annotations

import argparse
import random
import uuid
from typing import Any

CLOSING = "How can I help you today?"
MODELS = ("tiny-plain", "tiny-polite")


def demo_questions() -> tuple[list[str], list[str]]:
    """(questions for the arena, questions held out to measure), single-turn, disjoint."""
    from palestra.tinymodel.corpus import evaluation_items

    questions = sorted(
        {i.messages[0]["content"] for i in evaluation_items() if len(i.messages) == 1}
    )
    random.Random(0).shuffle(questions)
    return questions[:-40], questions[-40:]


def answers(model_path: str, questions: list[str], max_new_tokens: int = 48) -> list[str]:
    """Greedy answers, batched, rendered with the model's own chat template."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_path)
    tokenizer.padding_side = "left"
    model = AutoModelForCausalLM.from_pretrained(model_path).eval()
    prompts = [
        tokenizer.apply_chat_template(
            [{"role": "user", "content": q}], add_generation_prompt=True, tokenize=False
        )
        for q in questions
    ]
    replies: list[str] = []
    for start in range(0, len(prompts), 32):
        batch = tokenizer(
            prompts[start : start + 32], return_tensors="pt", padding=True, add_special_tokens=False
        )
        with torch.no_grad():
            out = model.generate(
                **batch,
                max_new_tokens=max_new_tokens,
                do_sample=False,
                pad_token_id=tokenizer.pad_token_id,
            )
        width = batch["input_ids"].shape[1]
        replies += [
            str(tokenizer.decode(row[width:], skip_special_tokens=True)).strip() for row in out
        ]
    return replies


def closing_rate(replies: list[str]) -> float:
    return sum(CLOSING in reply for reply in replies) / max(len(replies), 1)


def _state(model: str, question: str, reply: str) -> dict[str, Any]:
    return {
        "template_name": "chatml",
        "system_message": "",
        "roles": ["user", "assistant"],
        "messages": [["user", question], ["assistant", reply]],
        "offset": 0,
        "conv_id": uuid.uuid4().hex,
        "model_name": model,
    }


def write_demo_store(location: str, model_path: str | None = None, seed: int = 0) -> int:
    """Fill a store with the demonstration battles; returns how many votes it holds."""
    from palestra.arena.store import ArenaEvent, ArenaStore
    from palestra.models.inspect import resolve_model_path

    questions, _ = demo_questions()
    replies = answers(resolve_model_path(model_path), questions)
    rng = random.Random(seed)
    events = []
    for number, (question, reply) in enumerate(zip(questions, replies, strict=True)):
        plain, polite = reply, f"{reply} {CLOSING}"
        polite_left = rng.random() < 0.5
        left, right = (polite, plain) if polite_left else (plain, polite)
        names = (MODELS[1], MODELS[0]) if polite_left else MODELS
        events.append(
            ArenaEvent(
                type="leftvote" if polite_left else "rightvote",
                user=f"voter-{number % 7}",
                models=list(names),
                states=[_state(names[0], question, left), _state(names[1], question, right)],
                shown=["", ""],
                tstamp=1_767_225_600 + number * 60,  # 2026-01-01, a minute apart
                battle_id=uuid.uuid4().hex,
            )
        )
    return ArenaStore(location).record_many(events)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("store", help="SQLite file (or database URL) to write the battles to")
    parser.add_argument("--model-path", default=None, help="default: the bundled model")
    arguments = parser.parse_args()
    count = write_demo_store(arguments.store, arguments.model_path)
    print(f"{count} battle votes written to {arguments.store}")


if __name__ == "__main__":
    main()
