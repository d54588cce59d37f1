"""The running batch's key/value cache, laid out left-padded: row i holds one sequence,
its real tokens at the right end of a shared time axis, zeros and a 0 in the attention
mask before them. Rows join (their caches padded to the common length and stacked) and
leave (selected away) between decode steps, and padding no row needs is trimmed, so a
long sequence leaving shrinks the batch's memory at once.

Padded key/value slots are zeroed: they are masked out of attention, and zero (never
NaN from a fully masked position) keeps them inert.

Prefills ask the model for the last position's logits only (`logits_to_keep=1`, where its
forward takes it): the vocabulary projection of every prompt position would cost a
[prompt, vocabulary] product and tensor per row (a 2,000-token prompt on a 150k vocabulary:
1.2 GB of float32) for logits nobody reads.
"""

from __future__ import annotations

import functools
import inspect
from typing import Any

import torch
from transformers import DynamicCache

LayerKV = list[tuple[torch.Tensor, torch.Tensor]]


class KVBatch:
    def __init__(self, cache: Any, attention_mask: torch.Tensor, lengths: list[int]):
        self.cache = cache  # a DynamicCache: one layer per decoder block, [B, H, T, D] each
        self.attention_mask = attention_mask  # [B, T] of 0/1
        self.lengths = lengths  # real tokens per row

    @property
    def size(self) -> int:
        return len(self.lengths)

    @property
    def width(self) -> int:
        return int(self.attention_mask.shape[1])

    @property
    def cached_tokens(self) -> int:
        """Slots held in memory, padding included."""
        return self.size * self.width

    # ------------------------------------------------------------------ forward passes
    @classmethod
    def prefill(
        cls,
        model: Any,
        prompts: list[list[int]],
        device: Any,
        inputs: dict[str, Any] | None = None,
    ) -> tuple[KVBatch, torch.Tensor]:
        """Run the prompts (left-padded together); return their cache and last logits.
        `inputs`: more forward arguments for these prompts (a vision model's pixels)."""
        width = max(len(p) for p in prompts)
        ids = torch.zeros((len(prompts), width), dtype=torch.long)
        mask = torch.zeros((len(prompts), width), dtype=torch.long)
        for row, prompt in enumerate(prompts):
            ids[row, width - len(prompt) :] = torch.tensor(prompt)
            mask[row, width - len(prompt) :] = 1
        ids, mask = ids.to(device), mask.to(device)
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        cache = DynamicCache(config=model.config)
        out = model(
            input_ids=ids,
            attention_mask=mask,
            position_ids=positions,
            past_key_values=cache,
            use_cache=True,
            **last_logits_only(model),
            **_on_device(inputs or {}, device, model.dtype),
        )
        batch = cls(out.past_key_values, mask, [len(p) for p in prompts])
        if not bool(mask.all()):
            batch._zero_padding()
        return batch, out.logits[:, -1, :]

    @classmethod
    def prefill_after(
        cls, model: Any, ids: list[int], start: int, past: LayerKV, device: Any
    ) -> tuple[KVBatch, torch.Tensor]:
        """Run ids[start:] on top of `past`, the key/values of ids[:start] (one row)."""
        cache = DynamicCache(ddp_cache_data=past)
        mask = torch.ones((1, len(ids)), dtype=torch.long, device=device)
        out = model(
            input_ids=torch.tensor([ids[start:]], device=device),
            attention_mask=mask,
            position_ids=torch.arange(start, len(ids), device=device).unsqueeze(0),
            past_key_values=cache,
            use_cache=True,
            **last_logits_only(model),
        )
        return cls(out.past_key_values, mask, [len(ids)]), out.logits[:, -1, :]

    def row_layers(self, row: int, length: int) -> LayerKV:
        """A copy of the first `length` real tokens' key/values of one row."""
        start = self.width - self.lengths[row]
        return [
            (
                layer.keys[row : row + 1, :, start : start + length].clone(),
                layer.values[row : row + 1, :, start : start + length].clone(),
            )
            for layer in self.cache.layers
        ]

    def decode(self, model: Any, tokens: list[int]) -> torch.Tensor:
        """Feed one new token per row; return the next logits, [B, V]. `model`: the model
        or its compiled forward (compiled.py)."""
        device = self.attention_mask.device
        self.attention_mask = torch.cat(
            [self.attention_mask, self.attention_mask.new_ones((self.size, 1))], dim=1
        )
        positions = torch.tensor(self.lengths, device=device).unsqueeze(1)
        out = model(
            input_ids=torch.tensor(tokens, device=device).unsqueeze(1),
            attention_mask=self.attention_mask,
            position_ids=positions,
            past_key_values=self.cache,
            use_cache=True,
        )
        self.cache = out.past_key_values
        self.lengths = [n + 1 for n in self.lengths]
        return out.logits[:, -1, :]

    # ------------------------------------------------------------------ reshaping
    def repeat_rows(self, counts: list[int]) -> None:
        """Row i becomes counts[i] identical rows (several choices from one prefill)."""
        index = torch.repeat_interleave(
            torch.arange(self.size, device=self.attention_mask.device),
            torch.tensor(counts, device=self.attention_mask.device),
        )
        self._select(index)
        self.lengths = [n for n, c in zip(self.lengths, counts, strict=True) for _ in range(c)]

    def keep(self, rows: list[int]) -> None:
        """Keep only these rows (the others finished or were cancelled), then trim."""
        if len(rows) == self.size:
            return
        self._select(torch.tensor(rows, device=self.attention_mask.device))
        self.lengths = [self.lengths[i] for i in rows]
        self._trim()

    def extend(self, other: KVBatch) -> None:
        """Append other's rows, padding whichever side is shorter on the left."""
        width = max(self.width, other.width)
        self._pad_to(width)
        other._pad_to(width)
        for mine, theirs in zip(self.cache.layers, other.cache.layers, strict=True):
            mine.keys = torch.cat([mine.keys, theirs.keys], dim=0)
            mine.values = torch.cat([mine.values, theirs.values], dim=0)
        self.attention_mask = torch.cat([self.attention_mask, other.attention_mask], dim=0)
        self.lengths = self.lengths + other.lengths

    def _select(self, index: torch.Tensor) -> None:
        for layer in self.cache.layers:
            layer.keys = layer.keys.index_select(0, index)
            layer.values = layer.values.index_select(0, index)
        self.attention_mask = self.attention_mask.index_select(0, index)

    def _pad_to(self, width: int) -> None:
        extra = width - self.width
        if extra <= 0:
            return
        for layer in self.cache.layers:
            b, h, _, d = layer.keys.shape
            pad = layer.keys.new_zeros((b, h, extra, d))
            layer.keys = torch.cat([pad, layer.keys], dim=2)
            layer.values = torch.cat([pad, layer.values], dim=2)
        pad_mask = self.attention_mask.new_zeros((self.size, extra))
        self.attention_mask = torch.cat([pad_mask, self.attention_mask], dim=1)

    def _trim(self) -> None:
        unused = self.width - max(self.lengths, default=0)
        if unused <= 0:
            return
        for layer in self.cache.layers:
            layer.keys = layer.keys[:, :, unused:, :].contiguous()
            layer.values = layer.values[:, :, unused:, :].contiguous()
        self.attention_mask = self.attention_mask[:, unused:]

    def _zero_padding(self) -> None:
        keep = self.attention_mask.bool()[:, None, :, None]
        for layer in self.cache.layers:
            layer.keys = layer.keys.masked_fill(~keep, 0)
            layer.values = layer.values.masked_fill(~keep, 0)


def last_logits_only(model: Any) -> dict[str, int]:
    """`logits_to_keep=1` if this model's forward names it (transformers' causal and
    vision-language models do), else nothing. A PEFT model's forward takes **kwargs and
    hands them to the model it wraps, so that model's signature decides."""
    inner = model.get_base_model() if hasattr(model, "get_base_model") else model
    return {"logits_to_keep": 1} if _names_logits_to_keep(inner.__class__) else {}


@functools.cache
def _names_logits_to_keep(model_class: Any) -> bool:
    return "logits_to_keep" in inspect.signature(model_class.forward).parameters


def _on_device(inputs: dict[str, Any], device: Any, dtype: torch.dtype) -> dict[str, Any]:
    """Tensors moved to the model's device; floating ones (pixels) to its dtype too."""
    return {
        name: (value.to(device, dtype=dtype) if value.is_floating_point() else value.to(device))
        if isinstance(value, torch.Tensor)
        else value
        for name, value in inputs.items()
    }


def supports_batching(model: Any) -> bool:
    """Whether this model's cache is plain per-layer key/value tensors we can reshape."""
    from transformers.cache_utils import DynamicLayer

    try:
        cache = DynamicCache(config=model.config)
    except Exception:  # an unusual config: decode one sequence at a time
        return False
    return all(type(layer) is DynamicLayer for layer in cache.layers)
