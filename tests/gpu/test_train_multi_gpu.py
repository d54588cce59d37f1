"""GPU tier: `palestra train sft` under `accelerate launch` with the shipped configs.
Skipped with fewer than two CUDA GPUs; CI has none."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs two CUDA GPUs"),
]
CONFIGS = Path(__file__).parents[2] / "configs" / "accelerate"


@pytest.mark.parametrize("config", ["ddp.yaml", "fsdp.yaml"])
def test_sft_runs_on_two_gpus(config: str, tmp_path: Path) -> None:
    turns = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"}]
    data = tmp_path / "data.jsonl"
    data.write_text("\n".join(json.dumps({"messages": turns}) for _ in range(64)))
    out = tmp_path / "out"
    result = subprocess.run(
        [sys.executable, "-m", "accelerate.commands.launch", "--config_file",
         str(CONFIGS / config), "-m", "palestra.cli.main", "train", "sft", str(data),
         "--out", str(out), "--max-steps", "5", "--batch-size", "4"],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert (out / "config.json").is_file() and (out / "chat_template.jinja").is_file()
