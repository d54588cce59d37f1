"""One request's decoding state, independent of how its forward passes are batched: the
sampler, stop conditions, structured-output constraint, detokeniser and the chunks it
streams. The batch engine and the serial seq2seq loop both drive a `Sequence` one token
at a time through `advance`. A request reaches the engine as a `SequenceSpec`, plain data
that can cross to an engine process; the engine's side builds the `Sequence`.

The llama.cpp engine drives it too, with tokens llama.cpp sampled: torch is imported only
by what needs it (sampling here, logprobs), so a llama.cpp worker never loads torch."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any

from palestra.backends.hf.detokenize import IncrementalDetokenizer
from palestra.backends.hf.stopping import StopStringMatcher
from palestra.core.types import (
    FinishReason,
    GenerationChunk,
    SamplingParams,
    TokenLogprob,
    Usage,
)

if TYPE_CHECKING:
    import torch

    from palestra.backends.hf.sampling import TokenSampler


@dataclass(frozen=True)
class SequenceSpec:
    """A request as the engine takes it: the prompt's ids, its token budget, its sampling
    and the model's and template's stops (`params` carries the request's own)."""

    prompt_ids: list[int]
    max_new: int
    params: SamplingParams
    stop_ids: frozenset[int]
    stop_strings: tuple[str, ...]
    adapter: str | None = None
    # A vision model's pixel tensors for the prompt's first forward pass (None: text).
    vision_inputs: dict[str, Any] | None = None


class Sequence:
    """Feed it the logits for its next token; it samples, checks stops and says what to
    stream. `finished` is set once the last chunk (with usage) has been returned.
    `constraint`: the structured-output grammar state built for `spec.params.structure`."""

    def __init__(self, spec: SequenceSpec, *, tokenizer: Any, constraint: Any = None):
        params = spec.params
        self.prompt_ids = spec.prompt_ids
        self.max_new = spec.max_new
        self.params = params
        self.adapter = spec.adapter
        self.vision_inputs = spec.vision_inputs
        self.has_images = spec.vision_inputs is not None
        # ignore_eos drops the model's and template's stop ids, never the request's own.
        self.stop_ids = (frozenset() if params.ignore_eos else spec.stop_ids) | frozenset(
            params.stop_token_ids
        )
        self.constraint = constraint
        self.matcher = StopStringMatcher(
            spec.stop_strings + params.stop, include=params.include_stop_str_in_output
        )
        self.detokenizer = IncrementalDetokenizer(tokenizer, params.skip_special_tokens)
        self.tokenizer = tokenizer
        self.generated: list[int] = []
        self.finished: FinishReason | None = None
        self.cancelled = False  # set by the consumer from any thread; the engine drops it
        self._pending_ids: list[int] = []
        self._pending_logprobs: list[TokenLogprob] = []

    @property
    def simple_greedy(self) -> bool:
        """Its next token is the plain argmax: the engine may pick it for the whole batch."""
        p = self.params
        return (
            p.greedy
            and self.constraint is None
            and not p.logprobs
            and p.repetition_penalty == 1.0
            and not p.presence_penalty
            and not p.frequency_penalty
            and not p.logit_bias
            and not self.banned
        )

    @property
    def banned(self) -> frozenset[int]:
        """Tokens it may not pick now: its stop tokens, until min_tokens are out."""
        return self.stop_ids if len(self.generated) < self.params.min_tokens else frozenset()

    @property
    def length(self) -> int:
        """Tokens in its KV cache once the last sampled token has been fed back."""
        return len(self.prompt_ids) + len(self.generated)

    @cached_property
    def sampler(self) -> TokenSampler:
        from palestra.backends.hf.sampling import TokenSampler

        return TokenSampler(self.params)

    def sample(self, logits: torch.Tensor) -> int:
        return self.sampler.sample(logits, self.constraint, self.banned)

    def advance(self, token: int, logits: torch.Tensor | None = None) -> GenerationChunk | None:
        """Take the sampled token; return the chunk to stream now, if any. `logits` (this
        step's row) is needed only when the request asked for logprobs."""
        if self.params.logprobs and logits is not None and token not in self.stop_ids:
            from palestra.backends.hf.sampling import token_logprobs

            chosen, top = token_logprobs(logits, token, self.params.top_logprobs)
            decode = self.tokenizer.decode
            self._pending_logprobs.append(
                TokenLogprob(
                    decode([token]), token, chosen, tuple((decode([i]), lp) for i, lp in top)
                )
            )
        self.generated.append(token)
        if token in self.stop_ids:  # the stop token is not part of the text
            return self._finish("stop")
        if self.constraint is not None:
            self.constraint.accept(token)
        self._pending_ids.append(token)
        delta = ""
        if self.detokenizer.add(token):
            early = len(self.generated) < self.params.min_tokens  # stop strings wait too
            delta, stopped = self.matcher.update(self.detokenizer.text, hold=early)
            if stopped:
                return self._finish("stop", delta, flush=False)
        if self.constraint is not None and self.constraint.finished:
            return self._finish("stop", delta)  # the JSON value is complete
        if len(self.generated) >= self.max_new:
            return self._finish("length", delta)
        if delta or self._pending_logprobs:
            return self._chunk(delta)
        return None

    def _chunk(self, text: str) -> GenerationChunk:
        chunk = GenerationChunk(text, tuple(self._pending_ids), tuple(self._pending_logprobs))
        self._pending_ids, self._pending_logprobs = [], []
        return chunk

    def _finish(self, reason: FinishReason, text: str = "", flush: bool = True) -> GenerationChunk:
        if flush:
            text += self.matcher.flush(self.detokenizer.text)
        self.finished = reason
        chunk = GenerationChunk(
            text,
            tuple(self._pending_ids),
            tuple(self._pending_logprobs),
            finish_reason=reason,
            usage=Usage(len(self.prompt_ids), len(self.generated)),
        )
        self._pending_ids, self._pending_logprobs = [], []
        return chunk
