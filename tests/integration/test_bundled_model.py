"""Palestra Tiny, the bundled model: small, loads with plain transformers, and answers
held-out questions (phrasings and combinations never trained on) with exact answers."""

from __future__ import annotations

import json

from palestra.models.inspect import bundled_model_path


def test_weights_are_small_and_load_with_plain_transformers() -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = bundled_model_path()
    weights = sum(f.stat().st_size for f in folder.glob("*.safetensors"))
    assert 0 < weights < 30 * 2**20
    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForCausalLM.from_pretrained(folder)
    assert model.config.architectures == ["LlamaForCausalLM"]
    assert tokenizer.chat_template and "<|im_start|>" in tokenizer.chat_template


def test_held_out_accuracy_is_at_least_80_percent() -> None:
    from palestra.tinymodel.evaluate import evaluate_model

    report = evaluate_model(bundled_model_path())
    assert report["accuracy"] >= 0.8, json.dumps(report["failures"][:20], indent=1)
