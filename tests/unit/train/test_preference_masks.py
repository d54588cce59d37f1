"""Preference batches: an answer that runs over several turns keeps only its assistant
tokens in the completion mask; one-turn answers keep TRL's own mask."""

from __future__ import annotations

import pytest

pytest.importorskip("trl")


def test_user_turns_inside_an_answer_leave_the_mask() -> None:
    from transformers import AutoTokenizer
    from trl.trainer.dpo_trainer import DataCollatorForPreference

    from palestra.models.inspect import bundled_model_path
    from palestra.templates.resolve import resolve_template
    from palestra.train.preference import AssistantTurnsOnly

    tokenizer = AutoTokenizer.from_pretrained(bundled_model_path())
    template = resolve_template(None, tokenizer, "chatml")
    prompt = [{"role": "user", "content": "Q1"}]
    chosen = [
        {"role": "assistant", "content": "First answer."},
        {"role": "user", "content": "Follow-up question here?"},
        {"role": "assistant", "content": "Second answer."},
    ]
    rejected = [{"role": "assistant", "content": "Short."}]

    def ids(messages: list[dict[str, str]], generation: bool = False) -> list[int]:
        return list(
            tokenizer.apply_chat_template(
                messages, add_generation_prompt=generation, tokenize=True, return_dict=False
            )
        )

    prompt_ids = ids(prompt, generation=True)
    example = {
        "prompt": prompt,
        "chosen": chosen,
        "rejected": rejected,
        "prompt_ids": prompt_ids,
        "chosen_ids": ids(prompt + chosen)[len(prompt_ids) :],
        "rejected_ids": ids(prompt + rejected)[len(prompt_ids) :],
    }
    collate = AssistantTurnsOnly(
        DataCollatorForPreference(pad_token_id=0), template, tokenizer, ("chosen", "rejected")
    )
    batch = collate([example])
    chosen_row, rejected_row = batch["completion_mask"].tolist()
    full = prompt_ids + example["chosen_ids"]
    kept = tokenizer.decode([t for t, bit in zip(full, chosen_row, strict=False) if bit])
    assert "First answer." in kept and "Second answer." in kept
    assert "Follow-up" not in kept and "Q1" not in kept
    assert collate.masked_rows == 1 and collate.mismatched_rows == 0
    # the one-turn answer keeps TRL's mask: every token after the prompt
    length = len(prompt_ids) + len(example["rejected_ids"])
    assert rejected_row[: len(prompt_ids)] == [0] * len(prompt_ids)
    assert rejected_row[len(prompt_ids) : length] == [1] * len(example["rejected_ids"])
