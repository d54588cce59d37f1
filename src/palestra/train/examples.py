"""Conversations to training examples: token ids and labels (-100 outside assistant
replies) from the chat template's own renderer, so the loss mask is right for any template,
the tokenizer's Jinja one included.

Length: a conversation longer than `max_length` is split at turn boundaries into pieces
that fit (each piece keeps the system prompt); a single exchange that still does not fit
is truncated. Every split, truncation and reply-less example is counted in the report;
nothing is dropped without being counted.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from palestra.templates.render import render_conversation
from palestra.templates.spec import ChatTemplate
from palestra.train.data import Conversation, split_at_turns

IGNORE = -100


@dataclass(frozen=True)
class Example:
    input_ids: list[int]
    labels: list[int]

    @property
    def trained_tokens(self) -> int:
        return sum(1 for label in self.labels if label != IGNORE)


@dataclass
class ExampleReport:
    conversations: int = 0
    examples: int = 0
    split_conversations: int = 0  # conversations cut into several examples
    truncated: int = 0  # examples cut at max_length
    without_reply: int = 0  # examples with no assistant token to learn (kept out)
    tokens: int = 0
    trained_tokens: int = 0
    notes: list[str] = field(default_factory=list)

    def summary(self) -> str:
        return (
            f"{self.conversations} conversations -> {self.examples} examples "
            f"({self.split_conversations} split to fit, {self.truncated} truncated, "
            f"{self.without_reply} without an assistant reply left out); "
            f"{self.tokens} tokens, {self.trained_tokens} in the loss"
        )


def build_examples(
    conversations: list[Conversation], template: ChatTemplate, tokenizer: Any, max_length: int
) -> tuple[list[Example], ExampleReport]:
    report = ExampleReport(conversations=len(conversations))
    examples: list[Example] = []
    for conversation in conversations:
        pieces = split_at_turns(
            conversation, lambda part: _length(part, template, tokenizer) <= max_length
        )
        if len(pieces) > 1:
            report.split_conversations += 1
        for piece in pieces:
            example, truncated = _render(piece, template, tokenizer, max_length)
            report.truncated += truncated
            if example.trained_tokens == 0:
                report.without_reply += 1
                continue
            examples.append(example)
            report.tokens += len(example.input_ids)
            report.trained_tokens += example.trained_tokens
    report.examples = len(examples)
    return examples, report


def _render(
    messages: Conversation, template: ChatTemplate, tokenizer: Any, max_length: int
) -> tuple[Example, bool]:
    rendered = render_conversation(template, messages, tokenizer)
    ids, mask = rendered.input_ids, rendered.loss_mask
    truncated = len(ids) > max_length
    ids, mask = ids[:max_length], mask[:max_length]
    labels = [t if m else IGNORE for t, m in zip(ids, mask, strict=True)]
    return Example(list(ids), labels), truncated


def _length(messages: Conversation, template: ChatTemplate, tokenizer: Any) -> int:
    return len(render_conversation(template, messages, tokenizer).input_ids)
