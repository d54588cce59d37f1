"""The key/value memory budget of the batching engine: how much memory the key/values of
running sequences (and the prefix cache) may take, and how many token slots that buys.

`--kv-cache-memory auto` takes, once the weights are loaded, half of a CUDA device's free
memory (vLLM likewise sizes its cache from what the weights leave), and on a CPU or Apple's
MPS half of the system's available memory up to 4 GiB (vLLM's CPU backend reserves 4 GiB by
default): the prefix cache holds real memory, and a CPU server shares its machine.

A slot's size is measured, not computed from the config: one forward pass over two
tokens, whose cache bytes are divided by two, is right for every architecture
(grouped-query attention, odd head sizes, quantised caches).
"""

from __future__ import annotations

import os
import re
from typing import Any

AUTO_SHARE = 0.5  # of available memory, when --kv-cache-memory is auto
AUTO_HOST_CAP = 4 * 2**30  # on a CPU or MPS, at most this much
UNITS = {"": 1, "b": 1, "k": 10**3, "m": 10**6, "g": 10**9, "t": 10**12}
BINARY_UNITS = {"ki": 2**10, "mi": 2**20, "gi": 2**30, "ti": 2**40}


def parse_memory(text: str) -> int | None:
    """Bytes from "4GiB", "512MB", "1.5g" or "1000000"; None for "auto"."""
    value = text.strip().lower()
    if value == "auto":
        return None
    match = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([kmgt]i?)?b?", value)
    if match is None:
        raise ValueError(f"{text!r} is not a size: give auto or a size such as 4GiB or 512MB")
    number, unit = float(match.group(1)), match.group(2) or ""
    return int(number * (BINARY_UNITS.get(unit) or UNITS[unit]))


def available_memory(device: Any) -> int:
    """Bytes free for new tensors on the device now."""
    if device.type == "cuda":
        import torch

        free, _total = torch.cuda.mem_get_info(device)
        return int(free)
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") * AUTO_SHARE)


def kv_bytes_per_token(model: Any, device: Any) -> int:
    """Key/value bytes one cached token takes in this model, measured."""
    import torch
    from transformers import DynamicCache

    cache = DynamicCache(config=model.config)
    ids = torch.zeros((1, 2), dtype=torch.long, device=device)
    with torch.inference_mode():
        model(input_ids=ids, past_key_values=cache, use_cache=True)
    tensors = [getattr(layer, part, None) for layer in cache.layers for part in ("keys", "values")]
    total = sum(t.numel() * t.element_size() for t in tensors if isinstance(t, torch.Tensor))
    return max(1, total // 2)


def kv_slots(memory: str, model: Any, device: Any) -> int:
    """Token slots that `memory` ("auto" or a size) holds for this model."""
    budget = parse_memory(memory)
    if budget is None:
        budget = int(available_memory(device) * AUTO_SHARE)
        if device.type != "cuda":
            budget = min(budget, AUTO_HOST_CAP)
    return max(1, budget // kv_bytes_per_token(model, device))
