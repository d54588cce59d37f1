"""Choosing the next token from logits: OpenAI's logit bias, repetition / presence /
frequency penalties, temperature (0 = greedy), top-k, top-p, vLLM's min-p, tokens banned
for now (stop tokens before min_tokens), a per-request seeded generator, and logprobs."""

from __future__ import annotations

from collections import Counter
from typing import Any

import torch

from palestra.core.types import SamplingParams


class TokenSampler:
    """Samples one sequence's tokens according to its `SamplingParams`."""

    def __init__(self, params: SamplingParams, device: Any = "cpu"):
        self.params = params
        self.generator = torch.Generator(device="cpu")
        if params.seed is not None:
            self.generator.manual_seed(params.seed)
        else:
            self.generator.seed()
        self.counts: Counter[int] = Counter()

    def process(self, logits: torch.Tensor, banned: frozenset[int] = frozenset()) -> torch.Tensor:
        """Apply bias, penalties, temperature, top-k, top-p and min-p to one row of logits
        (float32); `banned` tokens cannot be picked."""
        p = self.params
        logits = logits.float().clone()
        if p.logit_bias:
            size = logits.numel()
            for token, bias in p.logit_bias:
                if 0 <= token < size:
                    logits[token] += bias
        if banned:
            size = logits.numel()
            ids = torch.tensor(
                [i for i in banned if 0 <= i < size], dtype=torch.long, device=logits.device
            )
            logits[ids] = float("-inf")
        if self.counts:
            ids = torch.tensor(list(self.counts.keys()), device=logits.device)
            if p.repetition_penalty != 1.0:
                picked = logits[ids]
                logits[ids] = torch.where(
                    picked > 0, picked / p.repetition_penalty, picked * p.repetition_penalty
                )
            if p.presence_penalty or p.frequency_penalty:
                counts = torch.tensor(
                    list(self.counts.values()), dtype=logits.dtype, device=logits.device
                )
                logits[ids] -= p.presence_penalty + p.frequency_penalty * counts
        if p.greedy:
            return logits
        logits = logits / p.temperature
        if p.top_k > 0 and p.top_k < logits.numel():
            threshold = torch.topk(logits, p.top_k).values[-1]
            logits = logits.masked_fill(logits < threshold, float("-inf"))
        if p.top_p < 1.0:
            sorted_logits, order = torch.sort(logits, descending=True)
            cumulative = torch.softmax(sorted_logits, dim=-1).cumsum(dim=-1)
            remove = cumulative - torch.softmax(sorted_logits, dim=-1) >= p.top_p
            logits = logits.masked_fill(
                torch.zeros_like(remove).scatter(0, order, remove), float("-inf")
            )
        if p.min_p > 0:
            probs = torch.softmax(logits, dim=-1)
            logits = logits.masked_fill(probs < p.min_p * probs.max(), float("-inf"))
        return logits

    def sample(
        self, logits: torch.Tensor, constraint: Any = None, banned: frozenset[int] = frozenset()
    ) -> int:
        """The next token; `constraint` (a `JsonConstraint`) masks what it forbids."""
        processed = self.process(logits, banned)
        if constraint is not None:
            constraint.mask(processed)
        if self.params.greedy:
            token = int(torch.argmax(processed).item())
        else:
            probs = torch.softmax(processed, dim=-1).cpu()
            token = int(torch.multinomial(probs, 1, generator=self.generator).item())
        self.counts[token] += 1
        return token


def token_logprobs(
    logits: torch.Tensor, token: int, top: int
) -> tuple[float, list[tuple[int, float]]]:
    """The model's log-probability of `token` and its `top` strongest alternatives."""
    logprobs = torch.log_softmax(logits.float(), dim=-1)
    chosen = float(logprobs[token].item())
    if top <= 0:
        return chosen, []
    values, ids = torch.topk(logprobs, top)
    return chosen, [(int(i), float(v)) for i, v in zip(ids.tolist(), values.tolist(), strict=True)]
