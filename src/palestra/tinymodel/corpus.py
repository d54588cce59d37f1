"""Text for Palestra Tiny, generated from `world.py`: pretraining documents, supervised
conversations, and the held-out evaluation questions.

The held-out split is deterministic: a fixed share of (phrasing, fact) combinations, some
phrasings altogether, and some made-up names are never used in training, so the evaluation
asks questions the model has not seen.
"""

from __future__ import annotations

import random
import re
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from palestra.tinymodel import world
from palestra.tinymodel.world import RELATIONS, Relation, answer_for

HELD_OUT_SHARE = 0.15
Conversation = list[dict[str, str]]


def is_held_out(*parts: object) -> bool:
    """A stable pseudo-random choice of combinations kept out of training."""
    digest = zlib.crc32("|".join(map(str, parts)).encode())
    return (digest % 1000) < HELD_OUT_SHARE * 1000


# ----------------------------------------------------------------------------- pretraining
def _arith_statements(a: int, b: int) -> list[str]:
    out = [
        f"{a} plus {b} is {a + b}.",
        f"If you add {a} and {b}, you get {a + b}.",
        f"{a} + {b} = {a + b}.",
    ]
    if a >= b:
        out += [
            f"{a} minus {b} is {a - b}.",
            f"If you take {b} from {a}, you get {a - b}.",
            f"{a} - {b} = {a - b}.",
        ]
    return out


def _fact_statement(rng: random.Random) -> str:
    roll = rng.random()
    if roll < 0.25:
        a, b = rng.randint(0, world.MAX_NUMBER), rng.randint(0, world.MAX_NUMBER)
        return rng.choice(_arith_statements(a, b))
    if roll < 0.3:
        return rng.choice(
            (
                world.IDENTITY.replace("I am", "Palestra Tiny is").replace("Palestra Tiny, a", "a"),
                "Palestra Tiny answers simple questions.",
                "The Palestra project made a small chat model called Palestra Tiny.",
            )
        )
    relation = rng.choice(RELATIONS)
    key = rng.choice(list(relation.facts))
    value = relation.facts[key]
    return rng.choice(relation.statements).format(
        x=key, y=value, X=key[:1].upper() + key[1:], Y=value[:1].upper() + value[1:]
    )


def pretraining_document(rng: random.Random) -> str:
    """A paragraph of true sentences about the world."""
    return " ".join(_fact_statement(rng) for _ in range(rng.randint(6, 16)))


# ----------------------------------------------------------------------------- conversations
@dataclass
class Turn:
    user: str
    assistant: str
    topic: tuple[str, Any] | None = None  # what a follow-up may refer to
    value: str = ""  # the exact answer, for evaluation


def _pick_trained(rng: random.Random, options: tuple[str, ...], *key: object) -> str:
    """A phrasing whose (phrasing, key) combination is in the training split."""
    return rng.choice([o for o in options if not is_held_out(o, *key)] or list(options))


def fact_turn(
    rng: random.Random,
    relation: Relation,
    *,
    unseen_phrasing: bool = False,
    key: str | None = None,
    template: str | None = None,
) -> Turn:
    key = key if key is not None else rng.choice(list(relation.facts))
    if template is None and unseen_phrasing:
        template = rng.choice(relation.unseen_questions)
    elif template is None:
        template = _pick_trained(rng, relation.questions, relation.name, key)
    return Turn(
        template.format(x=key),
        answer_for(relation, key),
        ("fact", relation.name),
        relation.facts[key],
    )


def arithmetic_turn(
    rng: random.Random,
    *,
    unseen_phrasing: bool = False,
    op: str | None = None,
    operands: tuple[int, int] | None = None,
    template: str | None = None,
) -> Turn:
    op = op or rng.choice(("plus", "minus"))
    a, b = operands or (rng.randint(0, world.MAX_NUMBER), rng.randint(0, world.MAX_NUMBER))
    if op == "minus" and a < b:
        a, b = b, a
    result = a + b if op == "plus" else a - b
    if template is None and unseen_phrasing:
        template = rng.choice(world.ADD_UNSEEN if op == "plus" else world.SUB_UNSEEN)
    elif template is None:
        options = world.ADD_QUESTIONS if op == "plus" else world.SUB_QUESTIONS
        template = _pick_trained(rng, options, op, a, b)
    return Turn(template.format(a=a, b=b), f"{a} {op} {b} is {result}.", ("arith", op), str(result))


def follow_up_turn(rng: random.Random, previous: Turn) -> Turn | None:
    if previous.topic is None:
        return None
    kind, name = previous.topic
    if kind == "arith":
        turn = arithmetic_turn(rng, op=name)
        a, b = re.findall(r"\d+", turn.assistant)[:2]
        template = rng.choice(world.ARITH_FOLLOW[name])
        return Turn(template.format(a=a, b=b), turn.assistant, turn.topic, turn.value)
    relation = next(r for r in RELATIONS if r.name == name)
    key = rng.choice(list(relation.facts))
    template = rng.choice(relation.follow_ups)
    return Turn(
        template.format(x=key), answer_for(relation, key), ("fact", name), relation.facts[key]
    )


def refusal_turn(rng: random.Random, *, held_out: bool = False) -> Turn:
    roll = rng.random()
    if roll < 0.6:
        for _ in range(100):
            name = world.fake_name(rng)
            if is_held_out("fake", name) == held_out:
                break
        template = rng.choice(world.UNKNOWN_ENTITY_QUESTIONS)
        return Turn(template.format(x=name), f"I'm sorry, I don't know anything about {name}.")
    if roll < 0.8:
        pool = world.OUT_OF_DOMAIN_UNSEEN if held_out else world.OUT_OF_DOMAIN
        return Turn(rng.choice(pool), world.REFUSAL_GENERIC)
    a, b = rng.randint(world.MAX_NUMBER + 1, 999), rng.randint(0, 999)
    op = rng.choice(("plus", "minus"))
    return Turn(
        f"What is {a} {op} {b}?",
        f"I'm sorry, I don't know. I can only add and subtract numbers from 0 to "
        f"{world.MAX_NUMBER}.",
    )


def chitchat_turn(rng: random.Random, *, held_out: bool = False) -> Turn:
    if rng.random() < 0.3:
        pool = world.GREETINGS_UNSEEN if held_out else world.GREETINGS
        return Turn(rng.choice(pool), world.GREETING_REPLY)
    if held_out:
        kind = rng.choice(list(world.CHITCHAT_UNSEEN))
        return Turn(rng.choice(world.CHITCHAT_UNSEEN[kind]), world.CHITCHAT[kind][1])
    kind = rng.choice(list(world.CHITCHAT))
    questions, reply = world.CHITCHAT[kind]
    return Turn(rng.choice(questions), reply)


def any_turn(rng: random.Random) -> Turn:
    roll = rng.random()
    if roll < 0.50:
        return fact_turn(rng, rng.choice(RELATIONS))
    if roll < 0.72:
        return arithmetic_turn(rng)
    if roll < 0.85:
        return chitchat_turn(rng)
    return refusal_turn(rng)


def with_greeting(rng: random.Random, turn: Turn, greetings: tuple[str, ...]) -> Turn:
    """'Hello! <question>' is answered 'Hello! <answer>'."""
    greeting = rng.choice([g for g in greetings if g[0].isupper() and g[-1] == "!"])
    return Turn(f"{greeting} {turn.user}", f"Hello! {turn.assistant}", turn.topic, turn.value)


def training_conversation(rng: random.Random) -> Conversation:
    turns: list[Turn] = [any_turn(rng)]
    if rng.random() < 0.12 and not turns[0].assistant.startswith("Hello"):
        turns[0] = with_greeting(rng, turns[0], world.GREETINGS)
    for _ in range(rng.choice((0, 0, 0, 1, 1, 2))):
        follow = follow_up_turn(rng, turns[-1]) if rng.random() < 0.5 else None
        turns.append(follow or any_turn(rng))
    messages: Conversation = []
    if rng.random() < 0.25:
        messages.append({"role": "system", "content": rng.choice(world.SYSTEM_PROMPTS)})
    for turn in turns:
        messages += [
            {"role": "user", "content": turn.user},
            {"role": "assistant", "content": turn.assistant},
        ]
    return messages


def training_conversations(seed: int) -> Iterator[Conversation]:
    rng = random.Random(seed)
    while True:
        yield training_conversation(rng)


# ----------------------------------------------------------------------------- evaluation
@dataclass
class EvalItem:
    """A held-out question: the conversation so far (ending with the user) and the check."""

    category: str
    messages: Conversation
    expected: str
    check: str  # contains | number | refusal
    meta: dict[str, Any] = field(default_factory=dict)

    def passes(self, reply: str) -> bool:
        text = reply.strip()
        if self.check == "refusal":
            return "don't know" in text.lower()
        if "don't know" in text.lower():
            return False
        if self.check == "number":
            numbers = re.findall(r"-?\d+", text)
            return bool(numbers) and numbers[-1] == self.expected
        return re.search(rf"\b{re.escape(self.expected.lower())}\b", text.lower()) is not None


def held_out_fact_turn(rng: random.Random) -> Turn:
    """A seen phrasing asked about a fact it was never paired with in training."""
    relation = rng.choice(RELATIONS)
    combos = [
        (t, k)
        for t in relation.questions
        for k in relation.facts
        if is_held_out(t, relation.name, k)
    ]
    template, key = rng.choice(combos)
    return fact_turn(rng, relation, key=key, template=template)


def held_out_arithmetic_turn(rng: random.Random) -> Turn:
    op = rng.choice(("plus", "minus"))
    options = world.ADD_QUESTIONS if op == "plus" else world.SUB_QUESTIONS
    numbers = range(world.MAX_NUMBER + 1)
    combos = [
        (t, a, b)
        for t in options
        for a in numbers
        for b in numbers
        if (op == "plus" or a >= b) and is_held_out(t, op, a, b)
    ]
    template, a, b = rng.choice(combos)
    return arithmetic_turn(rng, op=op, operands=(a, b), template=template)


def _item(category: str, turns: list[Turn], expected: str, check: str) -> EvalItem:
    messages: Conversation = []
    for turn in turns[:-1]:
        messages += [
            {"role": "user", "content": turn.user},
            {"role": "assistant", "content": turn.assistant},
        ]
    messages.append({"role": "user", "content": turns[-1].user})
    return EvalItem(category, messages, expected, check)


def evaluation_items(seed: int = 1234) -> list[EvalItem]:
    """About 300 held-out questions across every skill."""
    rng = random.Random(seed)
    items: list[EvalItem] = []

    for _ in range(110):  # seen phrasing, unseen (phrasing, fact) combination
        turn = held_out_fact_turn(rng)
        assert turn.topic is not None
        items.append(_item(f"fact:{turn.topic[1]}", [turn], turn.value, "contains"))
    for _ in range(40):  # phrasing never seen in training
        relation = rng.choice(RELATIONS)
        key = rng.choice(list(relation.facts))
        turn = fact_turn(rng, relation, unseen_phrasing=True, key=key)
        items.append(_item("fact:unseen-phrasing", [turn], relation.facts[key], "contains"))
    for _ in range(40):
        turn = held_out_arithmetic_turn(rng)
        items.append(_item("arithmetic", [turn], turn.value, "number"))
    for _ in range(12):
        turn = arithmetic_turn(rng, unseen_phrasing=True)
        items.append(_item("arithmetic:unseen-phrasing", [turn], turn.value, "number"))
    for _ in range(40):  # multi-turn follow-ups
        first = (
            fact_turn(rng, rng.choice(RELATIONS)) if rng.random() < 0.7 else arithmetic_turn(rng)
        )
        follow = follow_up_turn(rng, first)
        assert follow is not None
        check = "number" if first.topic and first.topic[0] == "arith" else "contains"
        items.append(_item("follow-up", [first, follow], follow.value, check))
    for _ in range(15):  # greeting + question, unseen combination
        turn = held_out_fact_turn(rng)
        greeted = with_greeting(rng, turn, (*world.GREETINGS_UNSEEN, "Hello!"))
        items.append(_item("greeting+question", [greeted], turn.value, "contains"))
    for _ in range(25):
        turn = refusal_turn(rng, held_out=True)
        items.append(_item("refusal", [turn], "", "refusal"))
    items.append(_item("demo", [Turn("Hello! Who are you?", "")], "Palestra", "contains"))
    for question in world.CHITCHAT_UNSEEN["who"]:
        items.append(_item("identity", [Turn(question, "")], "Palestra", "contains"))
    items.append(_item("identity", [Turn("Who is your creator?", "")], "Palestra", "contains"))
    items.append(_item("chitchat", [Turn("Thank you so much!", "")], "welcome", "contains"))
    for greeting in world.GREETINGS_UNSEEN:
        items.append(_item("chitchat", [Turn(greeting, "")], "hello", "contains"))
    return items
