"""`palestra data` tools and delta weights: every record kept or dropped for a counted
reason, HTML to markdown, splits at turn boundaries, seeded samples, and base + (target -
base) == target."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from palestra.train.data_tools import clean_sharegpt, filter_records, sample_records, split_long


def _conv(*turns: tuple[str, str], **extra: Any) -> dict[str, Any]:
    return {**extra, "conversations": [{"from": f, "value": v} for f, v in turns]}


def test_clean_sharegpt_converts_html_and_counts_every_drop() -> None:
    pytest.importorskip("markdownify")
    html = (
        "<p>Use <strong>this</strong>:</p><pre><code>pythonCopy code"
        "print('hi')\n</code></pre><ul><li>one</li><li>two</li></ul>"
    )
    records = [
        _conv(("human", "How?"), ("gpt", html), id="a"),
        _conv(("human", "How?"), ("gpt", html), id="dup"),
        _conv(("human", "Hi"), ("gpt", ""), id="empty"),
        _conv(("human", "Hi"), ("human", "Again"), ("gpt", "Yes"), id="broken"),
        _conv(("gpt", "Orphan reply"), ("human", "Q"), ("gpt", "A"), ("human", "unanswered")),
        {"nothing": True},
    ]
    kept, counts = clean_sharegpt(records)
    assert counts == {
        "kept": 2,
        "dropped: duplicate": 1,
        "dropped: empty turn or conversation": 1,
        "dropped: roles do not alternate": 1,
        "dropped: unreadable": 1,
    }
    markdown = kept[0]["conversations"][1]["value"]
    assert "**this**" in markdown and "print('hi')" in markdown and "- one" in markdown
    assert "Copy code" not in markdown and "<" not in markdown
    assert kept[0]["id"] == "a"
    assert [t["value"] for t in kept[1]["conversations"]] == ["Q", "A"]  # trimmed both ends


def test_split_long_cuts_at_user_turns_with_numbered_ids() -> None:
    words = lambda text: len(text.split())  # noqa: E731 - a tokenizer stand-in
    long = _conv(
        ("system", "Be brief."),
        *[(r, f"{r} {'word ' * 20}") for _ in range(4) for r in ("human", "gpt")],
        id="c1",
    )
    out, counts = split_long([long, _conv(("human", "Hi"), ("gpt", "Hello"), id="c2")], words, 60)
    assert counts == {"split": 1, "pieces": 4, "unchanged": 1}
    assert [r["id"] for r in out] == ["c1_0", "c1_1", "c1_2", "c1_3", "c2"]
    for piece in out[:4]:
        roles = [t["from"] for t in piece["conversations"]]
        assert roles[0] == "system" and roles[1] == "human" and roles[-1] == "gpt"


def test_filter_and_sample() -> None:
    records = [
        _conv(("human", "Q"), ("gpt", "A"), model="m1"),
        _conv(
            ("human", "Q"),
            ("gpt", "A"),
            ("human", "Q2"),
            ("gpt", "As an AI language model"),
            model="m1",
        ),
        _conv(("human", "Q"), ("gpt", "A"), model="m2"),
    ]
    kept, counts = filter_records(
        records, exclude_keywords=("as an ai language model",), models=("m1",)
    )
    assert len(kept) == 1 and counts == {"kept": 1, "dropped: keyword": 1, "dropped: model": 1}
    assert len(filter_records(records, min_turns=2)[0]) == 1
    assert sample_records(records, 2, seed=1) == sample_records(records, 2, seed=1)
    assert len(sample_records(records, 10)) == 3


def test_data_cli_writes_jsonl_and_reports(tmp_path: Path) -> None:
    source = tmp_path / "in.json"
    source.write_text(json.dumps([_conv(("human", "Q"), ("gpt", "A")), _conv(("human", "x"))]))
    out = tmp_path / "out.jsonl"
    result = subprocess.run(
        [sys.executable, "-m", "palestra.cli.main", "data", "clean-sharegpt", str(source),
         str(out)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "1 records" in result.stdout and "kept 1" in result.stdout
    assert len(out.read_text().splitlines()) == 1


@pytest.mark.parametrize("low_memory", [True, False])
def test_make_then_apply_delta_restores_the_target(
    random_llama_dir: Path, tmp_path: Path, low_memory: bool
) -> None:
    import torch
    from transformers import AutoModelForCausalLM

    from palestra.train.deltas import apply_delta, make_delta

    torch.manual_seed(1)
    target_model = AutoModelForCausalLM.from_pretrained(random_llama_dir)
    with torch.no_grad():
        for parameter in target_model.parameters():
            parameter.add_(torch.randn_like(parameter) * 0.01)
    target = tmp_path / "target"
    target_model.save_pretrained(target)
    from transformers import AutoTokenizer

    AutoTokenizer.from_pretrained(random_llama_dir).save_pretrained(target)
    if low_memory:  # in shards, as large models are stored
        target_model.save_pretrained(target, max_shard_size="100KB")
        assert (target / "model.safetensors.index.json").is_file()
    delta = make_delta(
        str(random_llama_dir), str(target), tmp_path / "delta", low_memory=low_memory
    )
    rebuilt = apply_delta(
        str(random_llama_dir), str(delta), tmp_path / "rebuilt", low_memory=low_memory
    )
    assert (rebuilt / "tokenizer_config.json").is_file()
    original = AutoModelForCausalLM.from_pretrained(target).state_dict()
    restored = AutoModelForCausalLM.from_pretrained(rebuilt).state_dict()
    delta_state = AutoModelForCausalLM.from_pretrained(delta).state_dict()
    for name, tensor in original.items():
        assert torch.allclose(restored[name], tensor, atol=1e-6), name
    assert delta_state["model.layers.0.mlp.up_proj.weight"].abs().max() < 0.1  # a real delta
