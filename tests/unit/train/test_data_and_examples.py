"""Training data: both file formats, the validation split, examples whose labels cover
exactly the assistant replies for several templates, long conversations split at turn
boundaries with every cut counted, and packing that keeps examples apart."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from palestra.core.errors import InvalidRequestError
from palestra.plugins import get_template
from palestra.templates.resolve import resolve_template
from palestra.train.data import load_conversations, split_validation
from palestra.train.examples import IGNORE, build_examples
from palestra.train.packing import PackedCollator, PaddedCollator, pack

CONVERSATION = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "What is the capital of Norland?"},
    {"role": "assistant", "content": "The capital of Norland is Velmora."},
    {"role": "user", "content": "And its river?"},
    {"role": "assistant", "content": "The Silver river runs through Velmora."},
]


def test_sharegpt_and_openai_records_read_alike(tmp_path: Path) -> None:
    sharegpt = {
        "id": "x",
        "conversations": [
            {"from": "system", "value": "Be brief."},
            {"from": "human", "value": "Hi"},
            {"from": "gpt", "value": "Hello!"},
        ],
    }
    openai = {
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Hello!"},
        ]
    }
    as_list = tmp_path / "a.json"
    as_list.write_text(json.dumps([sharegpt, openai]))
    as_lines = tmp_path / "b.jsonl"
    as_lines.write_text(json.dumps(sharegpt) + "\n\n" + json.dumps(openai) + "\n")
    for path in (as_list, as_lines):
        first, second = load_conversations(path)
        assert first == second == openai["messages"]


def test_bad_records_name_their_index(tmp_path: Path) -> None:
    path = tmp_path / "bad.json"
    path.write_text(
        json.dumps([{"messages": []}, {"conversations": [{"from": "alien", "value": "x"}]}])
    )
    with pytest.raises(InvalidRequestError, match="record 1: bad ShareGPT turn"):
        load_conversations(path)
    path.write_text(json.dumps([{"text": "no conversation here"}]))
    with pytest.raises(InvalidRequestError, match="record 0: neither"):
        load_conversations(path)
    lines = tmp_path / "bad.jsonl"
    lines.write_text('{"messages": []}\n{not json\n')
    with pytest.raises(InvalidRequestError, match=r"bad\.jsonl:2"):
        load_conversations(lines)


def test_validation_split_is_seeded_and_disjoint() -> None:
    conversations = [[{"role": "user", "content": str(i)}] for i in range(50)]
    train, val = split_validation(conversations, 0.1, seed=3)
    assert len(val) == 5 and len(train) == 45
    assert not {c[0]["content"] for c in train} & {c[0]["content"] for c in val}
    assert split_validation(conversations, 0.1, seed=3) == (train, val)
    assert len(split_validation(conversations[:3], 0.01)[1]) == 1  # never an empty split


@pytest.mark.parametrize("template_name", ["tokenizer", "vicuna_v1.1", "llama-2", "zephyr"])
def test_labels_cover_exactly_the_replies(bundled_tokenizer: Any, template_name: str) -> None:
    template = (
        resolve_template(None, bundled_tokenizer)
        if template_name == "tokenizer"
        else get_template(template_name)
    )
    (example,), report = build_examples([CONVERSATION], template, bundled_tokenizer, 512)
    assert report.examples == 1 and report.truncated == 0
    trained = [
        t for t, label in zip(example.input_ids, example.labels, strict=True) if label != IGNORE
    ]
    assert trained == [label for label in example.labels if label != IGNORE]
    trained_text = bundled_tokenizer.decode(trained)
    untrained_text = bundled_tokenizer.decode(
        [t for t, label in zip(example.input_ids, example.labels, strict=True) if label == IGNORE]
    )
    for message in CONVERSATION:
        if message["role"] == "assistant":
            assert message["content"] in trained_text
        else:
            assert message["content"] not in trained_text
            assert message["content"] in untrained_text
    # Token by token: each trained run of tokens decodes to one reply plus its end marker.
    runs, current = [], []
    for token, label in zip(example.input_ids, example.labels, strict=True):
        if label != IGNORE:
            current.append(token)
        elif current:
            runs.append(bundled_tokenizer.decode(current))
            current = []
    if current:
        runs.append(bundled_tokenizer.decode(current))
    replies = [m["content"] for m in CONVERSATION if m["role"] == "assistant"]
    assert len(runs) == 2
    for run, reply in zip(runs, replies, strict=True):
        assert run.strip().startswith(reply)
        assert len(run.strip()) - len(reply) <= len("<|im_end|>") + 2  # the end marker only


def test_long_conversations_split_at_turns_and_cuts_are_counted(bundled_tokenizer: Any) -> None:
    template = resolve_template(None, bundled_tokenizer)
    full = len(build_examples([CONVERSATION], template, bundled_tokenizer, 512)[0][0].input_ids)
    examples, report = build_examples([CONVERSATION], template, bundled_tokenizer, full - 5)
    assert report.split_conversations == 1 and report.examples == 2 and report.truncated == 0
    assert all(len(e.input_ids) <= full - 5 for e in examples)
    texts = [bundled_tokenizer.decode(e.input_ids) for e in examples]
    assert all("Be brief." in text for text in texts)  # each piece keeps the system prompt
    assert "Velmora." in texts[0] and "Silver river" in texts[1]

    tiny, report = build_examples([CONVERSATION], template, bundled_tokenizer, 12)
    assert report.truncated >= 1 and all(len(e.input_ids) <= 12 for e in tiny)
    assert report.examples + report.without_reply == 2  # every piece accounted for
    assert "truncated" in report.summary()


def test_packing_keeps_examples_apart(bundled_tokenizer: Any) -> None:
    import torch
    from transformers import AutoModelForCausalLM

    from palestra.models.inspect import bundled_model_path

    template = resolve_template(None, bundled_tokenizer)
    conversations = [
        [{"role": "user", "content": q}, {"role": "assistant", "content": a}]
        for q, a in [
            ("Hi", "Hello! How can I help?"),
            ("What is 2 plus 2?", "2 plus 2 is 4."),
            ("What color is snow?", "Snow is white."),
            ("What sound does a cat make?", "A cat says meow."),
        ]
    ]
    examples, _ = build_examples(conversations, template, bundled_tokenizer, 128)
    rows = pack(examples, 128)
    assert len(rows) == 1 and len(rows[0].input_ids) == sum(len(e.input_ids) for e in examples)
    assert rows[0].position_ids.count(0) == 4

    model = AutoModelForCausalLM.from_pretrained(bundled_model_path()).eval()
    with torch.no_grad():
        collate = PackedCollator(bundled_tokenizer.pad_token_id)
        packed = model(**collate(rows), use_cache=False).loss
        padded = model(**PaddedCollator(bundled_tokenizer.pad_token_id)(examples)).loss
        leaky = model(  # the same row without position ids: examples see each other
            input_ids=torch.tensor([rows[0].input_ids]), labels=torch.tensor([rows[0].labels])
        ).loss
    assert packed.item() == pytest.approx(padded.item(), rel=1e-4)
    assert abs(leaky.item() - padded.item()) > 1e-3

    # Several rows of different lengths in one batch (right-padded): the same loss again.
    longest = max(len(e.input_ids) for e in examples)
    two_rows = pack(examples, longest + 8)
    assert len(two_rows) > 1 and len({len(r.input_ids) for r in two_rows}) > 1
    with torch.no_grad():
        batched = model(**PackedCollator(bundled_tokenizer.pad_token_id)(two_rows), use_cache=False)
    assert batched.loss.item() == pytest.approx(padded.item(), rel=1e-4)
