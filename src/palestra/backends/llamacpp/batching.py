"""Continuous batching for llama.cpp, as llama.cpp's own server does it: one context holds
`slots` sequences (one key/value stream each), and every step is one `llama_decode` call
for the whole batch through llama-cpp-python's low-level API.

Each step (1) drops sequences whose consumer went away, (2) puts waiting requests into
free slots, choosing the slot whose cached tokens share the longest prefix with the
prompt and keeping those key/values (so the next turn of a chat only prefills what is
new), (3) builds one batch: the last sampled token of every decoding sequence plus
prompt tokens of newcomers up to the step's token budget (long prompts are prefilled in
chunks over several steps, so running sequences never stall behind them), (4) decodes
it, and (5) samples each sequence that produced logits with its own llama.cpp sampler
chain (grammar, penalties, top-k, top-p, min-p, temperature, seeded draw, or greedy),
after Palestra's logit bias and stop-token bans (min_tokens, ignore_eos), and hands the
token to its `Sequence` (stops, lengths, detokenisation, usage).
"""

from __future__ import annotations

import ctypes
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from palestra.backends.delivery import EngineThread, Entry, flush, unique
from palestra.core.errors import BackendError

PENALTY_WINDOW = 64  # tokens the repetition penalties look back over (llama.cpp's default)


@dataclass
class _Slot:
    """One key/value stream of the context, and the tokens it holds."""

    seq_id: int
    cached: list[int] = field(default_factory=list)
    entry: Entry[Any] | None = None
    sampler: Any = None
    fed: int = 0  # tokens of this request in the stream (prompt and fed-back replies)


class LlamaBatchEngine(EngineThread[Any]):
    thread_name = "palestra-llamacpp-batch"

    def __init__(
        self,
        llm: Any,
        *,
        slots: int,
        context_length: int,
        threads: int,
        grammar_text: Callable[[str], str],
        stop_ids: frozenset[int],
        step_tokens: int = 512,
    ):
        from llama_cpp import llama_cpp as bindings

        super().__init__()
        self._b = bindings
        self._llm = llm
        params = bindings.llama_context_default_params()
        params.n_ctx = slots * context_length
        params.n_seq_max = slots
        params.n_batch = max(step_tokens, slots)
        params.n_ubatch = min(512, params.n_batch)
        params.n_threads = params.n_threads_batch = threads
        params.kv_unified = False  # a stream per sequence: attention reads its own only
        params.no_perf = True
        self._ctx = bindings.llama_init_from_model(llm.model, params)
        if not self._ctx:
            raise BackendError("llama.cpp could not create the batch context")
        self._memory = bindings.llama_get_memory(self._ctx)
        self._vocab = bindings.llama_model_get_vocab(llm.model)
        self._n_vocab = bindings.llama_vocab_n_tokens(self._vocab)
        self._step_tokens = params.n_batch
        self._batch = bindings.llama_batch_init(self._step_tokens, 0, 1)
        self._grammar_text = grammar_text
        self._stop_ids = stop_ids  # banned outright under ignore_eos
        self._slots = [_Slot(i) for i in range(slots)]
        self.steps = 0  # decode calls, for tests and health
        self.peak_batch = 0  # most sequences decoding in one call
        self.reused_tokens = 0  # prompt tokens found already cached in a slot

    def close(self) -> None:
        super().close()
        if self._ctx:
            for slot in self._slots:
                self._free_sampler(slot)
            self._b.llama_batch_free(self._batch)
            self._b.llama_free(self._ctx)
            self._ctx = None

    @property
    def running(self) -> int:
        return sum(slot.entry is not None for slot in self._slots)

    def _in_flight(self) -> list[Entry[Any]]:
        return [slot.entry for slot in self._slots if slot.entry is not None]

    def _reset(self) -> None:
        """Empty every slot and the context's key/values (what they held is suspect)."""
        for slot in self._slots:
            self._free_sampler(slot)
            slot.entry, slot.cached, slot.fed = None, [], 0
        self._b.llama_memory_clear(self._memory, True)

    # ------------------------------------------------------------------ engine thread
    def _run(self) -> None:
        while True:
            with self._wake:
                while not self._closed and not self._waiting and not self.running:
                    self._wake.wait()
                if self._closed:
                    self._fail_everyone(BackendError("the model is shutting down"))
                    return
                self._drop_cancelled()
                self._admit()
            active = [slot for slot in self._slots if slot.entry is not None]
            if not active:  # every waiting request was cancelled
                continue
            try:
                self._step(active)
            except Exception as exc:  # a failed decode fails its batch, not the engine
                for slot in active:
                    assert slot.entry is not None
                    slot.entry.outbox.append(exc)
                    slot.entry.sequence.finished = "stop"
            flush(unique([slot.entry for slot in active if slot.entry is not None]))
            for slot in active:
                if slot.entry is not None and slot.entry.sequence.finished is not None:
                    self._release(slot)

    def _drop_cancelled(self) -> None:
        for slot in self._slots:
            if slot.entry is not None and slot.entry.sequence.cancelled:
                self._release(slot)
        self._waiting = deque(e for e in self._waiting if not e.sequence.cancelled)

    def _admit(self) -> None:
        """Put waiting requests into free slots, each where most of its prompt is cached."""
        while self._waiting:
            free = [slot for slot in self._slots if slot.entry is None]
            if not free:
                return
            entry = self._waiting.popleft()
            prompt = entry.sequence.prompt_ids
            slot = max(free, key=lambda s: _common_prefix(s.cached, prompt))
            keep = min(_common_prefix(slot.cached, prompt), len(prompt) - 1)  # >= 1 to run
            if not self._b.llama_memory_seq_rm(self._memory, slot.seq_id, keep, -1):
                self._b.llama_memory_seq_rm(self._memory, slot.seq_id, -1, -1)
                keep = 0  # this model's memory cannot be cut mid-way (recurrent layers)
            self.reused_tokens += keep
            slot.cached = prompt[:keep]
            slot.fed = keep
            try:
                slot.sampler = self._sampler(entry.sequence)
            except Exception as exc:  # this request's settings fail it, not the engine
                entry.sequence.finished = "stop"
                entry.outbox.append(exc)
                flush([entry])
                continue
            slot.entry = entry

    def _release(self, slot: _Slot) -> None:
        """Free the slot; its key/values stay for the next prompt that shares them."""
        self._free_sampler(slot)
        slot.entry = None

    def _step(self, active: list[_Slot]) -> None:
        batch = self._batch
        count = 0
        outputs: list[tuple[_Slot, int]] = []
        decoding = [s for s in active if s.fed >= len(_sequence(s).prompt_ids)]
        prefilling = [s for s in active if s.fed < len(_sequence(s).prompt_ids)]
        for slot in decoding:  # every running sequence advances one token
            token = _sequence(slot).generated[-1]
            self._put(count, token, slot, logits=True)
            outputs.append((slot, count))
            count += 1
        for slot in prefilling:  # prompts fill what is left of the step's budget
            prompt = _sequence(slot).prompt_ids
            take = min(len(prompt) - slot.fed, self._step_tokens - count)
            if take <= 0:
                break
            for offset in range(take):
                last = slot.fed + offset == len(prompt) - 1
                self._put(
                    count, prompt[slot.fed + offset], slot, logits=last, pos=slot.fed + offset
                )
                if last:
                    outputs.append((slot, count))
                count += 1
            slot.cached.extend(prompt[slot.fed : slot.fed + take])
            slot.fed += take
        batch.n_tokens = count
        status = self._b.llama_decode(self._ctx, batch)
        if status != 0:
            raise BackendError(f"llama.cpp decode failed (status {status})")
        self.steps += 1
        self.peak_batch = max(self.peak_batch, len(outputs))
        for slot, index in outputs:
            self._sample(slot, index)

    def _put(self, index: int, token: int, slot: _Slot, *, logits: bool, pos: int = -1) -> None:
        batch = self._batch
        if pos < 0:  # a fed-back reply token: the next place in the slot's stream
            pos = slot.fed
            slot.fed += 1
            slot.cached.append(token)
        batch.token[index] = token
        batch.pos[index] = pos
        batch.n_seq_id[index] = 1
        batch.seq_id[index][0] = slot.seq_id
        batch.logits[index] = logits

    def _sample(self, slot: _Slot, index: int) -> None:
        entry = slot.entry
        assert entry is not None
        sequence = entry.sequence
        params = sequence.params
        adjust = dict(params.logit_bias)
        banned = self._stop_ids if params.ignore_eos else sequence.banned
        adjust.update({token: float("-inf") for token in banned})
        if adjust:
            row = self._b.llama_get_logits_ith(self._ctx, index)
            for token, value in adjust.items():
                if 0 <= token < self._n_vocab:
                    row[token] = row[token] + value
        token = int(self._b.llama_sampler_sample(slot.sampler, self._ctx, index))
        try:
            chunk = sequence.advance(token)
        except Exception as exc:  # one sequence's failure is its own
            sequence.finished = "stop"
            entry.outbox.append(exc)
            return
        if chunk is not None:
            entry.outbox.append(chunk)

    # ------------------------------------------------------------------ samplers
    def _sampler(self, sequence: Any) -> Any:
        """A llama.cpp sampler chain with the request's settings."""
        b = self._b
        chain = b.llama_sampler_chain_init(b.llama_sampler_chain_default_params())
        try:
            self._add_samplers(chain, sequence.params)
        except BaseException:
            b.llama_sampler_free(chain)  # with what was added to it
            raise
        return chain

    def _add_samplers(self, chain: Any, params: Any) -> None:
        """Grammar, penalties (at temperature 0 too, as the transformers sampler), then
        greedy; or top-k, top-p, min-p, temperature and a seeded draw."""
        b = self._b
        if params.json_schema:
            grammar = self._grammar_text(params.json_schema).encode("utf-8")
            b.llama_sampler_chain_add(
                chain, b.llama_sampler_init_grammar(self._vocab, grammar, b"root")
            )
        if params.repetition_penalty != 1.0 or params.frequency_penalty or params.presence_penalty:
            penalties: tuple[Any, ...] = (
                PENALTY_WINDOW,
                params.repetition_penalty,
                params.frequency_penalty,
                params.presence_penalty,
            )
            if len(b.llama_sampler_init_penalties.argtypes) == 5:  # n_vocab first, as the
                penalties = (self._n_vocab, *penalties)  # llama.h of 0.3.36 still declares
            b.llama_sampler_chain_add(chain, b.llama_sampler_init_penalties(*penalties))
        if params.greedy:
            b.llama_sampler_chain_add(chain, b.llama_sampler_init_greedy())
            return
        if params.top_k > 0:
            b.llama_sampler_chain_add(chain, b.llama_sampler_init_top_k(params.top_k))
        b.llama_sampler_chain_add(chain, b.llama_sampler_init_top_p(params.top_p, 1))
        if params.min_p > 0:
            b.llama_sampler_chain_add(chain, b.llama_sampler_init_min_p(params.min_p, 1))
        b.llama_sampler_chain_add(chain, b.llama_sampler_init_temp(params.temperature))
        seed = params.seed if params.seed is not None else b.LLAMA_DEFAULT_SEED
        b.llama_sampler_chain_add(chain, b.llama_sampler_init_dist(ctypes.c_uint32(seed).value))

    def _free_sampler(self, slot: _Slot) -> None:
        if slot.sampler is not None:
            self._b.llama_sampler_free(slot.sampler)
            slot.sampler = None


def _sequence(slot: _Slot) -> Any:
    assert slot.entry is not None
    return slot.entry.sequence


def _common_prefix(a: list[int], b: list[int]) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n
