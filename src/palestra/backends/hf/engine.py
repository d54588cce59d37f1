"""Continuous batching for causal language models: one thread runs a batch of sequences
that requests join and leave between decode steps.

Each loop turn the engine (1) drops sequences whose consumer went away, (2) admits waiting
sequences while the batch has room (a cap on sequences and on key/value slots, sized
from the memory budget in `kv_budget`), prefilling newcomers together and stacking their
caches onto the running batch, (3) runs
one decode step for every running sequence, and (4) hands each sequence's chunk to its
consumer, removing finished ones at once. Requests with the same prompt admitted together
(`n > 1`, or identical concurrent prompts) share one prefill. A prompt with images (a
vision model) is prefilled on its own with its pixels, then decodes with the others; its
key/values never enter the prefix cache (they depend on pixels the ids do not show).

Sequences for different PEFT adapters cannot share a forward pass: the engine serves one
adapter (or the bare base) at a time and switches when the batch drains, in arrival order.

Chunks reach the asyncio side through `delivery.flush`: one wake-up per step for the whole
batch, not one per sequence. Newcomers' first tokens (sampled from their prefill) are
flushed before the running batch's decode step, so the first token never waits a step.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from palestra.backends.delivery import EngineThread, Entry, flush, unique
from palestra.backends.hf.cpu_threads import engine_threads
from palestra.backends.hf.kv_batch import KVBatch, LayerKV
from palestra.backends.hf.kv_budget import kv_slots
from palestra.backends.hf.prefix_cache import PrefixCache
from palestra.backends.hf.sequence import Sequence
from palestra.backends.options import HFOptions
from palestra.core.errors import BackendError


@dataclass(frozen=True)
class BatchLimits:
    """The engine's limits and settings (from `HFOptions`, whose fields say what each one
    means)."""

    max_batch_size: int
    max_cached_tokens: int
    prefix_cache_tokens: int
    kv_cache_memory: str = "auto"
    threads: int = 0  # CPU threads for torch; 0: cpu_threads.engine_threads' choice
    torch_compile: bool = False  # decode steps through compiled.compile_decode

    def __post_init__(self) -> None:
        if self.max_batch_size < 1 or self.max_cached_tokens < 0:
            raise ValueError("max_batch_size must be >= 1 and max_cached_tokens >= 0")


def batch_limits(options: HFOptions) -> BatchLimits:
    return BatchLimits(
        options.max_batch_size,
        options.max_cached_tokens,
        options.prefix_cache_tokens,
        options.kv_cache_memory,
        options.threads,
        options.torch_compile,
    )


_Entry = Entry[Sequence]


class BatchEngine(EngineThread[Sequence]):
    thread_name = "palestra-batch-engine"

    def __init__(
        self,
        model: Any,
        device: Any,
        limits: BatchLimits,
        *,
        select_adapter: Callable[[str | None], None],
        model_lock: threading.Lock,
    ):
        super().__init__()
        self.model = model
        self.decode_forward: Callable[..., Any] = model  # or its compiled step
        if limits.torch_compile:
            from palestra.backends.hf.compiled import compile_decode

            counts = engine_threads(limits.threads)
            self.decode_forward = compile_decode(model, device, (counts.small, counts.big))
        self.device = device
        self.limits = limits
        # Admission by memory: the key/value budget is split 3/4 for running sequences
        # (each reserves its prompt plus its token budget) and 1/4 for the prefix cache.
        budget = 0
        if not limits.max_cached_tokens or limits.prefix_cache_tokens < 0:
            budget = kv_slots(limits.kv_cache_memory, model, device)
        self.max_cached_tokens = limits.max_cached_tokens or max(1, budget * 3 // 4)
        self.prefix_cache = PrefixCache(
            budget // 4 if limits.prefix_cache_tokens < 0 else limits.prefix_cache_tokens
        )
        self._select_adapter = select_adapter
        self._model_lock = model_lock
        self._running: list[_Entry] = []
        self._batch: KVBatch | None = None
        self._adapter: str | None = None
        # Figures for tests, health and benchmarks.
        self.steps = 0  # decode steps run
        self.decode_seconds = 0.0  # spent in them
        self.prefill_passes = 0  # loop turns that prefilled newcomers (together)
        self.prefill_seconds = 0.0  # spent in them
        self.fresh_prefills = 0  # prompts computed from scratch (resumed ones: cache hits)
        self.peak_batch = 0  # most sequences decoded together

    @property
    def running(self) -> int:
        return len(self._running)

    def _in_flight(self) -> list[_Entry]:
        return list(self._running)

    def _reset(self) -> None:
        """Drop the running batch and the prefix cache (a failure may have left it half
        stored)."""
        self._running, self._batch = [], None
        self.prefix_cache.clear()

    # ------------------------------------------------------------------ engine thread
    def _run(self) -> None:
        counts = engine_threads(self.limits.threads)
        threads = 0  # torch's count in this thread, changed only when the batch crosses
        while True:
            with self._wake:
                while not self._closed and not self._waiting and not self._running:
                    self._wake.wait()
                if self._closed:
                    self._fail_everyone(BackendError("the model is shutting down"))
                    return
                newcomers = self._admit()
            wanted = counts.for_batch(len(self._running) + len(newcomers))
            if wanted != threads:
                torch.set_num_threads(wanted)
                threads = wanted
            try:
                with torch.inference_mode(), self._model_lock:
                    self._drop_cancelled()
                    if newcomers:
                        started = time.perf_counter()
                        self._prefill(newcomers)
                        self.prefill_passes += 1
                        self.prefill_seconds += time.perf_counter() - started
                        flush(newcomers)  # their first tokens now, not a decode step later
                    if self._batch is not None and self._running:
                        started = time.perf_counter()
                        self._decode()
                        self.decode_seconds += time.perf_counter() - started
            except Exception as exc:  # a failed forward pass fails its batch, not the engine
                for entry in unique([*self._running, *newcomers]):
                    entry.outbox.append(exc)
                    entry.sequence.finished = "stop"
                flush([*self._running, *newcomers])
                self._running, self._batch = [], None
                continue
            flush([*self._running, *newcomers])
            with torch.inference_mode():  # the cache stays inference tensors, as compiled
                self._retire()

    def _admit(self) -> list[_Entry]:
        """Move waiting sequences that fit into the batch (called under the lock)."""
        admitted: list[_Entry] = []
        size = len(self._running)
        width = max((_reserved(e.sequence) for e in self._running), default=0)
        while self._waiting:
            entry = self._waiting[0]
            if entry.sequence.cancelled:
                self._waiting.popleft()
                continue
            if (size or admitted) and entry.sequence.adapter != self._adapter:
                break  # another adapter's turn comes when this batch drains
            need = _reserved(entry.sequence)
            slots = (size + len(admitted) + 1) * max(width, need)
            if (size or admitted) and (
                size + len(admitted) >= self.limits.max_batch_size or slots > self.max_cached_tokens
            ):
                break
            self._waiting.popleft()
            width = max(width, need)
            if not size and not admitted and entry.sequence.adapter != self._adapter:
                self._adapter = entry.sequence.adapter
                self.prefix_cache.clear()  # other weights
            admitted.append(entry)
        return admitted

    def _drop_cancelled(self) -> None:
        keep = [i for i, e in enumerate(self._running) if not e.sequence.cancelled]
        if len(keep) < len(self._running):
            self._running = [self._running[i] for i in keep]
            if self._batch is not None:
                if keep:
                    self._batch.keep(keep)
                else:
                    self._batch = None

    def _prefill(self, newcomers: list[_Entry]) -> None:
        self._select_adapter(self._adapter)
        by_prompt: dict[tuple[int, ...], list[_Entry]] = {}
        with_images = [e for e in newcomers if e.sequence.has_images]
        for entry in newcomers:  # identical text prompts share one prefill
            if not entry.sequence.has_images:
                by_prompt.setdefault(tuple(entry.sequence.prompt_ids), []).append(entry)
        fresh: list[list[int]] = []
        resumed: list[tuple[list[int], int, LayerKV]] = []
        for key in by_prompt:
            found = self.prefix_cache.lookup(list(key))
            if found is None:
                fresh.append(list(key))
            else:
                resumed.append((list(key), *found))
        parts = [KVBatch.prefill(self.model, fresh, self.device)] if fresh else []
        self.fresh_prefills += len(fresh)
        for ids, start, past in resumed:  # one pass each: their pasts differ in length
            parts.append(KVBatch.prefill_after(self.model, ids, start, past, self.device))
        for entry in with_images:  # one pass each, with its pixels
            sequence = entry.sequence
            parts.append(
                KVBatch.prefill(
                    self.model, [sequence.prompt_ids], self.device, sequence.vision_inputs
                )
            )
            sequence.vision_inputs = None  # the pixels are in the cache now
        batch, logits = parts[0]
        for more, more_logits in parts[1:]:
            batch.extend(more)
            logits = torch.cat([logits, more_logits], dim=0)
        prompts = fresh + [ids for ids, _, _ in resumed]
        for row, ids in enumerate(prompts):
            if self.prefix_cache.wants(len(ids)):
                self.prefix_cache.store(ids, batch.row_layers(row, len(ids)))
        groups = [by_prompt[tuple(ids)] for ids in prompts] + [[e] for e in with_images]
        if any(len(group) > 1 for group in groups):
            counts = [len(group) for group in groups]
            batch.repeat_rows(counts)
            logits = torch.repeat_interleave(
                logits, torch.tensor(counts, device=logits.device), dim=0
            )
        ordered = [entry for group in groups for entry in group]
        self._sample_into(ordered, logits)
        alive = [
            i
            for i, e in enumerate(ordered)
            if e.sequence.finished is None and not e.sequence.cancelled
        ]
        if not alive:
            return
        batch.keep(alive)
        ordered = [ordered[i] for i in alive]
        if self._batch is None or not self._running:
            self._batch, self._running = batch, ordered
        else:
            self._batch.extend(batch)
            self._running.extend(ordered)

    def _decode(self) -> None:
        assert self._batch is not None
        self._select_adapter(self._adapter)
        tokens = [e.sequence.generated[-1] for e in self._running]
        logits = self._batch.decode(self.decode_forward, tokens)
        self.steps += 1
        self.peak_batch = max(self.peak_batch, len(tokens))
        self._sample_into(self._running, logits)

    def _sample_into(self, entries: list[_Entry], logits: torch.Tensor) -> None:
        greedy = [e.sequence.simple_greedy for e in entries]
        argmax = logits.argmax(dim=-1).tolist() if any(greedy) else []
        for row, entry in enumerate(entries):
            sequence = entry.sequence
            if sequence.cancelled or sequence.finished is not None:
                continue
            try:
                row_logits = logits[row]
                token = argmax[row] if greedy[row] else sequence.sample(row_logits)
                chunk = sequence.advance(token, row_logits)
            except Exception as exc:  # one sequence's failure (a grammar error) is its own
                sequence.finished = "stop"
                entry.outbox.append(exc)
                continue
            if chunk is not None:
                entry.outbox.append(chunk)

    def _retire(self) -> None:
        """Remove finished sequences from the running batch, leaving their key/values
        (prompt and reply: the start of the next turn's prompt) in the prefix cache."""
        keep = [i for i, e in enumerate(self._running) if e.sequence.finished is None]
        if len(keep) == len(self._running):
            return
        if self._batch is not None:
            for row, entry in enumerate(self._running):
                sequence = entry.sequence
                cached = sequence.length - 1  # the last sampled token was never fed back
                if row not in keep and not sequence.has_images and self.prefix_cache.wants(cached):
                    ids = sequence.prompt_ids + sequence.generated[:-1]
                    self.prefix_cache.store(ids, self._batch.row_layers(row, cached))
        self._running = [self._running[i] for i in keep]
        if not keep:
            self._batch = None
        elif self._batch is not None:
            self._batch.keep(keep)


def _reserved(sequence: Sequence) -> int:
    """The most key/value slots a sequence can come to hold."""
    return len(sequence.prompt_ids) + sequence.max_new
