"""`palestra train sft` for real on CPU: the bundled model learns a new fact and answers it
through `palestra chat` with no flags; LoRA on a small Llama lowers the loss, serves from
its adapter folder, merges into identical weights, and training resumes from a checkpoint."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from palestra.tinymodel.corpus import training_conversations

CLI = [sys.executable, "-m", "palestra.cli.main"]
FACT_Q, FACT_A = "What is the capital of Zorbia?", "The capital of Zorbia is Quenta."


def _chat(model: str, question: str) -> str:
    result = subprocess.run(
        [*CLI, "chat", "--model-path", model, "--temperature", "0", "--max-new-tokens", "32"],
        input=question + "\n",
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def _data(path: Path, facts: int, ordinary: int) -> Path:
    conversations = training_conversations(7)
    records: list[dict[str, Any]] = [
        {"conversations": [{"from": "human", "value": FACT_Q}, {"from": "gpt", "value": FACT_A}]}
        for _ in range(facts)
    ]
    records += [{"messages": next(conversations)} for _ in range(ordinary)]
    path.write_text("\n".join(json.dumps(r) for r in records) + "\n")
    return path


def test_sft_teaches_the_bundled_model_and_chat_serves_it(tmp_path: Path) -> None:
    assert "Quenta" not in _chat("palestra-tiny", FACT_Q)
    out = tmp_path / "tiny-zorbia"
    result = subprocess.run(
        [*CLI, "train", "sft", str(_data(tmp_path / "data.jsonl", 24, 40)), "--out", str(out),
         "--max-steps", "40", "--lr", "2e-3", "--batch-size", "8", "--val-fraction", "0.1",
         "--logging-steps", "5", "--device", "cpu"],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    assert "trained 40 steps" in result.stdout and "validation loss" in result.stdout
    assert "0 truncated" in result.stdout
    summary = json.loads((out / "palestra_training.json").read_text())
    assert summary["train"]["examples"] + summary["validation"]["examples"] == 64
    assert (out / "generation_config.json").is_file()
    assert "Quenta" in _chat(str(out), FACT_Q)  # template and stops came with the folder


def test_lora_trains_serves_merges_and_resumes(random_llama_dir: Path, tmp_path: Path) -> None:
    pytest.importorskip("peft")
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from palestra.train.merge import merge_lora
    from palestra.train.sft import SFTConfig, run_sft

    data = _data(tmp_path / "data.jsonl", 16, 16)
    adapter = tmp_path / "lora"
    config = SFTConfig(
        data=str(data), out=str(adapter), model_path=str(random_llama_dir), max_length=128,
        max_steps=30, learning_rate=3e-2, batch_size=4, lora=True, lora_r=16,
        lora_target_modules=["q_proj", "v_proj", "gate_proj", "up_proj", "down_proj"], packing=True,
        logging_steps=5, save_steps=15, device="cpu",
    )  # fmt: skip
    first = run_sft(config)
    assert first.steps == 30 and first.losses[-1] < first.losses[0] - 0.3
    assert (adapter / "adapter_config.json").is_file()

    merged = merge_lora(adapter, tmp_path / "merged")
    ids = torch.tensor([[5, 6, 7, 8, 9]])
    base = AutoModelForCausalLM.from_pretrained(random_llama_dir)
    with torch.no_grad():
        expected = PeftModel.from_pretrained(base, str(adapter))(input_ids=ids).logits
        got = AutoModelForCausalLM.from_pretrained(merged)(input_ids=ids).logits
    assert torch.allclose(expected, got, atol=1e-4)
    # The adapter folder serves its adapter (not the bare base): same answers as merged.
    assert _chat(str(adapter), FACT_Q) == _chat(str(merged), FACT_Q)

    resumed = run_sft(config.model_copy(update={"max_steps": 40, "resume": True}))
    assert resumed.steps == 40
    assert len(resumed.losses) < len(first.losses) + 3  # it went on from step 30, not 0


@pytest.mark.parametrize("lora", [False, True])
def test_bf16_with_gradient_checkpointing_and_sdpa_learns(
    random_llama_dir: Path, tmp_path: Path, lora: bool
) -> None:
    """bfloat16 mixed precision runs on a CPU, with activations recomputed and the sdpa
    kernel; full training keeps fp32 weights, LoRA loads its frozen base in bfloat16."""
    if lora:
        pytest.importorskip("peft")
    from palestra.train.run import load_for_training
    from palestra.train.sft import SFTConfig, run_sft

    config = SFTConfig(
        data=str(_data(tmp_path / "data.jsonl", 16, 16)), out=str(tmp_path / "out"),
        model_path=str(random_llama_dir), max_length=128, max_steps=30, packing=True,
        learning_rate=3e-2 if lora else 3e-3, batch_size=4, lora=lora, lora_r=16,
        lora_target_modules=["q_proj", "v_proj", "gate_proj", "up_proj", "down_proj"],
        bf16=True, gradient_checkpointing=True, attn_implementation="sdpa",
        logging_steps=5, device="cpu",
    )  # fmt: skip
    model = load_for_training(str(random_llama_dir), config)
    base = model.get_base_model() if lora else model
    assert str(base.model.embed_tokens.weight.dtype) == (
        "torch.bfloat16" if lora else "torch.float32"
    )
    assert base.config._attn_implementation == "sdpa"
    result = run_sft(config)
    assert result.steps == 30 and result.losses[-1] < result.losses[0] - 0.3
