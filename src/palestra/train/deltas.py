"""Delta weights, as Vicuna was released: `make_delta` writes target - base, and
`apply_delta` rebuilds the target as base + delta. Where the delta's vocabulary is larger
than the base's (added tokens), only the overlapping rows are offset.

Where both models are stored as safetensors (one file or shards), the work goes shard by
shard of the second model, reading each base tensor lazily: memory holds one output shard
and one base tensor, never two whole models. Other checkpoints (`.bin`) load both models
whole (`low_memory=False`)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from palestra.core.errors import InvalidRequestError

SINGLE = "model.safetensors"
INDEX = "model.safetensors.index.json"
TORCH_DTYPES = {"F64": "float64", "F32": "float32", "F16": "float16", "BF16": "bfloat16",
                "I64": "int64", "I32": "int32", "I16": "int16", "I8": "int8", "U8": "uint8",
                "BOOL": "bool"}  # fmt: skip


def _resolve(path: str | Path) -> Path:
    from palestra.models.inspect import resolve_model_path

    return Path(resolve_model_path(str(path)))


def shard_map(folder: Path) -> dict[str, str] | None:
    """Tensor name -> safetensors file in `folder`, or None without safetensors."""
    if (folder / INDEX).is_file():
        return dict(json.loads((folder / INDEX).read_text())["weight_map"])
    if (folder / SINGLE).is_file():
        from safetensors import safe_open

        with safe_open(folder / SINGLE, framework="pt") as file:
            return dict.fromkeys(file.keys(), SINGLE)
    return None


def _offset(name: str, tensor: Any, source: Any, sign: float) -> Any:
    """tensor + sign * source over the region they share, in float32, in tensor's dtype."""
    if tensor.dim() != source.dim() or any(
        a < b for a, b in zip(tensor.shape, source.shape, strict=True)
    ):
        raise InvalidRequestError(
            f"tensor {name!r}: shapes {tuple(tensor.shape)} and {tuple(source.shape)} do not match"
        )
    result = tensor.float()
    region = tuple(slice(0, size) for size in source.shape)
    result[region] += sign * source.float()
    return result.to(tensor.dtype)


class TensorFile:
    """One safetensors file read a tensor at a time with plain reads: memory-mapping it
    (as `safe_open` does) would leave every page read counted in the process's memory."""

    def __init__(self, path: Path):
        self.path = path
        with path.open("rb") as file:
            length = int.from_bytes(file.read(8), "little")
            self.header: dict[str, Any] = json.loads(file.read(length))
        self.start = 8 + length
        self.metadata: dict[str, str] = self.header.pop("__metadata__", None) or {"format": "pt"}

    def names(self) -> list[str]:
        return list(self.header)

    def get(self, name: str) -> Any:
        import torch

        entry = self.header[name]
        begin, end = entry["data_offsets"]
        with self.path.open("rb") as file:
            file.seek(self.start + begin)
            data = bytearray(file.read(end - begin))
        dtype = getattr(torch, TORCH_DTYPES[entry["dtype"]])
        if not data:
            return torch.empty(entry["shape"], dtype=dtype)
        return torch.frombuffer(data, dtype=dtype).reshape(entry["shape"])


def _streamed(base: Path, other: Path, out: Path, sign: float) -> None:
    from safetensors.torch import save_file

    base_files, other_files = shard_map(base), shard_map(other)
    assert base_files is not None and other_files is not None
    out.mkdir(parents=True, exist_ok=True)
    headers: dict[str, TensorFile] = {}  # base shards, by file name (headers only)
    for shard in sorted(set(other_files.values())):
        file = TensorFile(other / shard)
        written: dict[str, Any] = {}
        for name in file.names():
            if name not in base_files:
                raise InvalidRequestError(f"{base} has no tensor {name!r}")
            source_file = base_files[name]
            if source_file not in headers:
                headers[source_file] = TensorFile(base / source_file)
            source = headers[source_file].get(name)
            written[name] = _offset(name, file.get(name), source, sign)
        save_file(written, out / shard, metadata=file.metadata)
        del written
    for item in other.iterdir():  # config, tokenizer, generation config, shard index
        if item.is_file() and not item.name.endswith((".safetensors", ".bin")):
            shutil.copy2(item, out / item.name)


def _in_memory(base: Path, other: Path, out: Path, sign: float) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    base_state = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32).state_dict()
    model = AutoModelForCausalLM.from_pretrained(other, dtype=torch.float32)
    done: set[int] = set()
    with torch.no_grad():
        for name, tensor in model.state_dict().items():
            if tensor.data_ptr() in done:  # tied weights (embeddings and lm_head): once
                continue
            done.add(tensor.data_ptr())
            if name not in base_state:
                raise InvalidRequestError(f"{base} has no tensor {name!r}")
            tensor.copy_(_offset(name, tensor, base_state[name], sign))
    model.save_pretrained(out, safe_serialization=True)
    AutoTokenizer.from_pretrained(other).save_pretrained(out)  # the target's / delta's


def _combine(
    base_path: str, other_path: str, out: str | Path, sign: float, low_memory: bool | None
) -> Path:
    base, other, out = _resolve(base_path), _resolve(other_path), Path(out)
    streamable = shard_map(base) is not None and shard_map(other) is not None
    if low_memory and not streamable:
        raise InvalidRequestError(
            "--low-memory reads safetensors shards; one of the models has none "
            "(load it and save it with safe_serialization, or leave out --low-memory)"
        )
    if low_memory is None:
        low_memory = streamable
    (_streamed if low_memory else _in_memory)(base, other, out, sign)
    return out


def make_delta(base: str, target: str, out: str | Path, *, low_memory: bool | None = None) -> Path:
    """Write target - base to `out`; `low_memory` None: streamed whenever both are
    safetensors."""
    return _combine(base, target, out, -1.0, low_memory)


def apply_delta(base: str, delta: str, out: str | Path, *, low_memory: bool | None = None) -> Path:
    """Write base + delta to `out` (the target the delta was made from)."""
    return _combine(base, delta, out, +1.0, low_memory)
