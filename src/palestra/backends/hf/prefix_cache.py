"""Reuse of computed key/values across requests: multi-turn chat resends the whole history,
`n > 1` choices and retries resend the same prompt, and many requests share a system
prompt. Finished sequences and fresh prefills leave their per-layer key/values here; a new
prompt starts from the longest cached common prefix and prefills only the rest.

Bounded by a token budget with least-recently-used eviction. Entries are plain tensors
[1, heads, length, head_dim] per layer, owned by the cache (cloned out of the batch).
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

import numpy as np

from palestra.backends.hf.kv_batch import LayerKV

MIN_REUSE = 8  # shorter matches are not worth a separate forward pass


@dataclass
class _Entry:
    ids: np.ndarray
    layers: LayerKV


class PrefixCache:
    def __init__(self, max_tokens: int):
        self.max_tokens = max_tokens
        self._entries: OrderedDict[bytes, _Entry] = OrderedDict()
        self._tokens = 0
        self.hits = 0  # prompts that reused a prefix
        self.reused_tokens = 0  # prompt tokens not recomputed thanks to the cache

    @property
    def tokens(self) -> int:
        return self._tokens

    def clear(self) -> None:
        """Forget every entry (other weights, or a failed loop); the counters stay."""
        self._entries.clear()
        self._tokens = 0

    def wants(self, length: int) -> bool:
        return bool(self.max_tokens) and MIN_REUSE <= length <= self.max_tokens

    def store(self, ids: list[int], layers: LayerKV) -> None:
        if not self.wants(len(ids)):
            return
        array = np.asarray(ids, dtype=np.int64)
        key = array.tobytes()
        if key in self._entries:
            self._entries.move_to_end(key)
            return
        self._entries[key] = _Entry(array, layers)
        self._tokens += len(ids)
        while self._tokens > self.max_tokens:
            _, evicted = self._entries.popitem(last=False)
            self._tokens -= len(evicted.ids)

    def lookup(self, ids: list[int]) -> tuple[int, LayerKV] | None:
        """The longest reusable prefix of `ids` (always leaving one token to run) and its
        key/values cut to that length, or None."""
        if not self._entries or len(ids) <= MIN_REUSE:
            return None
        query = np.asarray(ids, dtype=np.int64)
        best_key, best = b"", 0
        for key, entry in self._entries.items():
            size = min(len(entry.ids), len(query) - 1)
            if size <= best:
                continue
            differs = np.flatnonzero(entry.ids[:size] != query[:size])
            common = int(differs[0]) if differs.size else size
            if common > best:
                best_key, best = key, common
        if best < MIN_REUSE:
            return None
        self._entries.move_to_end(best_key)
        self.hits += 1
        self.reused_tokens += best
        layers = self._entries[best_key].layers
        return best, [(k[:, :, :best], v[:, :, :best]) for k, v in layers]
