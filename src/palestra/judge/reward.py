"""A reward model as a pairwise judge (`palestra judge grade --judge-reward-model DIR`):
each model's conversation up to the judged turn is scored by the reward model, rendered
with the model's own chat template, and the higher reward wins (equal rewards tie). The
verdict does not depend on which answer is shown first, so both orders agree by
construction. Reward models come from `palestra train reward`."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from palestra.core.errors import InvalidRequestError


class RewardJudge:
    """Scores conversations with a sequence-classification model that has one output."""

    def __init__(self, path: str | Path, name: str | None = None, max_length: int = 2048):
        import torch
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        from palestra.backends.hf.loading import quiet_transformers
        from palestra.models.inspect import resolve_model_path

        quiet_transformers()
        folder = resolve_model_path(str(path))
        self.name = name or Path(folder).name
        self.tokenizer = AutoTokenizer.from_pretrained(folder)
        if not self.tokenizer.chat_template:
            raise InvalidRequestError(f"{folder}: a reward model needs its chat template")
        self.model = AutoModelForSequenceClassification.from_pretrained(folder)
        if self.model.config.num_labels != 1:
            raise InvalidRequestError(
                f"{folder} has {self.model.config.num_labels} outputs; a reward model has one "
                "(train one with palestra train reward)"
            )
        self.model.eval()
        self.max_length = max_length
        self._torch = torch

    def rewards(self, conversations: list[list[dict[str, str]]]) -> list[float]:
        texts = [
            self.tokenizer.apply_chat_template(messages, tokenize=False)
            for messages in conversations
        ]
        batch = self.tokenizer(
            texts,
            return_tensors="pt",
            padding=True,
            truncation=True,
            max_length=self.max_length,
            add_special_tokens=False,
        )
        with self._torch.no_grad():
            return [float(x) for x in self.model(**batch).logits[:, 0]]

    async def judge_pair(self, conversations: list[list[dict[str, str]]]) -> list[float]:
        return await asyncio.to_thread(self.rewards, conversations)

    async def close(self) -> None:
        return None


def conversation_at(turns: tuple[str, ...], answers: tuple[str, ...], turn: int) -> list[Any]:
    """The question's first `turn` user turns with the model's answers to them."""
    messages: list[Any] = []
    for question, answer in zip(turns[:turn], answers[:turn], strict=False):
        messages += [
            {"role": "user", "content": question},
            {"role": "assistant", "content": answer},
        ]
    return messages
