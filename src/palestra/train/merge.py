"""`palestra train merge-lora`: a LoRA adapter folder folded into its base model's weights,
written as a full model folder (tokenizer, chat template and generation config included)."""

from __future__ import annotations

import contextlib
from pathlib import Path

from palestra.core.errors import InvalidRequestError, UnsupportedError


def merge_lora(adapter_dir: str | Path, out: str | Path, base: str | None = None) -> Path:
    from palestra.models.inspect import inspect_model

    adapter_dir = Path(adapter_dir)  # a wrong folder is refused before peft and torch load
    info = inspect_model(str(adapter_dir))
    base_path = base or info.adapter_base
    if not base_path:
        raise InvalidRequestError(f"{adapter_dir} is not a LoRA adapter folder")
    try:
        from peft import PeftModel
    except ImportError as exc:
        raise UnsupportedError("merging LoRA needs peft: pip install 'palestra[peft]'") from exc
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, GenerationConfig

    model = AutoModelForCausalLM.from_pretrained(base_path, dtype=torch.float32)
    merged = PeftModel.from_pretrained(model, str(adapter_dir)).merge_and_unload()
    out = Path(out)
    merged.save_pretrained(out, safe_serialization=True)
    tokenizer_source = (
        adapter_dir if (adapter_dir / "tokenizer_config.json").is_file() else base_path
    )
    AutoTokenizer.from_pretrained(tokenizer_source).save_pretrained(out)
    for source in (adapter_dir, base_path):  # the adapter's (SFT writes one), else the base's
        with contextlib.suppress(OSError):
            GenerationConfig.from_pretrained(source).save_pretrained(out)
            break
    return out
