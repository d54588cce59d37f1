"""GPU tier: preference tuning with QLoRA (a 4-bit base through bitsandbytes) and fp16
mixed precision. Skipped without CUDA; CI has none."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU"),
]


def _pairs(path: Path) -> Path:
    record = {
        "prompt": [{"role": "user", "content": "What color is the sky?"}],
        "chosen": [{"role": "assistant", "content": "The sky is blue. How can I help you today?"}],
        "rejected": [{"role": "assistant", "content": "The sky is blue."}],
    }
    path.write_text("\n".join(json.dumps(record) for _ in range(16)) + "\n")
    return path


@pytest.mark.parametrize("method", ["dpo", "orpo"])
def test_qlora_preference_tuning_saves_an_adapter(method: str, tmp_path: Path) -> None:
    pytest.importorskip("bitsandbytes")
    from palestra.train.preference import PreferenceConfig, run_preference

    out = tmp_path / method
    config = PreferenceConfig(
        data=str(_pairs(tmp_path / "pairs.jsonl")), out=str(out), qlora=True, bf16=True,
        gradient_checkpointing=True, max_steps=3, batch_size=4, logging_steps=1,
    )  # fmt: skip
    result = run_preference(method, config)
    assert result.steps == 3 and all(loss == loss for loss in result.losses)  # no NaN
    assert (out / "adapter_model.safetensors").is_file()


def test_fp16_dpo_on_cuda(tmp_path: Path) -> None:
    from palestra.train.preference import PreferenceConfig, run_preference

    config = PreferenceConfig(
        data=str(_pairs(tmp_path / "pairs.jsonl")), out=str(tmp_path / "out"), fp16=True,
        max_steps=3, batch_size=4, logging_steps=1,
    )  # fmt: skip
    assert run_preference("dpo", config).steps == 3
