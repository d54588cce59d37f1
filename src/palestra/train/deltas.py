"""Delta weights, as Vicuna was released: `make_delta` writes target - base, and
`apply_delta` rebuilds the target as base + delta. Where the delta's vocabulary is larger
than the base's (added tokens), only the overlapping rows are offset."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from palestra.core.errors import InvalidRequestError


def _load(path: str | Path) -> Any:
    import torch
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)


def _combine(base_path: str, other_path: str, out: str | Path, sign: float) -> Path:
    import torch
    from transformers import AutoTokenizer

    base, other = _load(base_path), _load(other_path)
    base_state = base.state_dict()
    done: set[int] = set()
    with torch.no_grad():
        for name, tensor in other.state_dict().items():
            if tensor.data_ptr() in done:  # tied weights (embeddings and lm_head): once
                continue
            done.add(tensor.data_ptr())
            if name not in base_state:
                raise InvalidRequestError(f"{base_path} has no tensor {name!r}")
            source = base_state[name]
            if tensor.dim() != source.dim() or any(
                a < b for a, b in zip(tensor.shape, source.shape, strict=True)
            ):
                raise InvalidRequestError(
                    f"tensor {name!r}: shapes {tuple(tensor.shape)} "
                    f"and {tuple(source.shape)} do not match"
                )
            region = tuple(slice(0, size) for size in source.shape)
            tensor[region] += sign * source
    out = Path(out)
    other.save_pretrained(out, safe_serialization=True)
    AutoTokenizer.from_pretrained(other_path).save_pretrained(out)  # the target's / delta's
    return out


def make_delta(base: str, target: str, out: str | Path) -> Path:
    return _combine(base, target, out, -1.0)


def apply_delta(base: str, delta: str, out: str | Path) -> Path:
    return _combine(base, delta, out, +1.0)
