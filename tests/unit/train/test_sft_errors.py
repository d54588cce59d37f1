"""`palestra train` refuses bad input with one actionable line (exit 2), before loading
or training anything."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

CLI = [sys.executable, "-m", "palestra.cli.main", "train"]


def _data(tmp_path: Path) -> Path:
    path = tmp_path / "data.json"
    turns = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}]
    path.write_text(json.dumps([{"messages": turns}]))
    return path


def test_a_value_outside_the_choices_names_them(tmp_path: Path) -> None:
    result = subprocess.run(
        [*CLI, "sft", str(_data(tmp_path)), "--out", str(tmp_path / "out"),
         "--report-to", "mlflow"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 2
    assert "mlflow" in result.stderr and "tensorboard" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--qlora"], "QLoRA quantises to 4 bits with bitsandbytes, which needs CUDA"),
        (["--lora", "--lora-target-modules", "no_such_proj"], "--lora-target-modules"),
        (["--val-fraction", "1.5"], "--val-fraction: Value error, must be in [0, 1), got 1.5"),
        (["--fp16"], "--fp16 mixed precision needs a CUDA GPU; on a CPU use --bf16"),
    ],
)
def test_bad_options_are_one_line(tmp_path: Path, extra: list[str], message: str) -> None:
    result = subprocess.run(
        [*CLI, "sft", str(_data(tmp_path)), "--out", str(tmp_path / "out"), "--device", "cpu",
         "--max-steps", "1", *extra],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 2, result.stderr[-1500:]
    lines = [line for line in result.stderr.splitlines() if line.startswith("palestra: error:")]
    assert len(lines) == 1 and message in lines[0]
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"bf16": True, "fp16": True}, "--bf16 and --fp16 exclude each other"),
        ({"attn_implementation": "fast"}, "expected one of eager, sdpa"),
        ({"attn_implementation": "flash_attention_2"}, "pip install flash-attn"),
        ({"device": "cpu", "fp16": True}, "on a CPU use --bf16"),
    ],
)
def test_precision_and_attention_settings_are_checked_first(
    settings: dict[str, object], message: str
) -> None:
    from palestra.core.errors import PalestraError
    from palestra.train.preference import PreferenceConfig

    config = PreferenceConfig(data="prefs.jsonl", out="out", **settings)
    with pytest.raises(PalestraError, match=message.replace("(", r"\(")):
        config.check()


def test_missing_data_and_non_adapter_merge(tmp_path: Path) -> None:
    missing = subprocess.run(
        [*CLI, "sft", str(tmp_path / "nope.json"), "--out", str(tmp_path / "o")],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert missing.returncode == 2 and "nope.json does not exist" in missing.stderr
    merge = subprocess.run(
        [*CLI, "merge-lora", str(tmp_path), "--out", str(tmp_path / "m")],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert merge.returncode == 2 and "palestra: error:" in merge.stderr
