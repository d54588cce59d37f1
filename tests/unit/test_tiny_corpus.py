"""Palestra Tiny's held-out questions really are held out of its training conversations."""

from __future__ import annotations

import itertools

from palestra.tinymodel import world
from palestra.tinymodel.corpus import evaluation_items, training_conversations


def _training_user_messages(count: int) -> set[str]:
    messages: set[str] = set()
    for conversation in itertools.islice(training_conversations(1), count):
        messages.update(m["content"] for m in conversation if m["role"] == "user")
    return messages


def test_held_out_questions_never_appear_in_training() -> None:
    seen = _training_user_messages(30_000)
    held_out = [
        item
        for item in evaluation_items()
        if item.category.startswith(("fact", "arithmetic", "refusal", "greeting"))
        or item.category == "identity"
    ]
    leaked = [i.messages[-1]["content"] for i in held_out if i.messages[-1]["content"] in seen]
    assert leaked == []


def test_unseen_phrasings_are_never_trained_on() -> None:
    seen = _training_user_messages(30_000)
    for relation in world.RELATIONS:
        for template in relation.unseen_questions:
            stem = template.split("{x}")[0]
            assert not any(message.startswith(stem) for message in seen), template


def test_every_skill_is_evaluated() -> None:
    categories = {item.category.split(":")[0] for item in evaluation_items()}
    assert categories == {
        "fact",
        "arithmetic",
        "follow-up",
        "greeting+question",
        "refusal",
        "identity",
        "chitchat",
        "demo",
    }
