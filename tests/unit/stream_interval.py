"""Checks for every batching engine: with a stream interval (tokens) or a time window, the
engine hands tokens on in groups (the first text at once, the end with the rest) and the
text stays the same."""

from __future__ import annotations

import asyncio
from typing import Any

from palestra.core.types import GenerationChunk, GenerationRequest, Pacing, SamplingParams


def frames(backend: Any, pacing: Pacing) -> list[GenerationChunk]:
    """One greedy 18-token reply, as the engine hands it over under `pacing`."""
    prompt = backend.chat_prompt([{"role": "user", "content": "Hello! Who are you?"}])
    params = SamplingParams(temperature=0, max_tokens=18, ignore_eos=True)

    async def collect() -> list[GenerationChunk]:
        request = GenerationRequest(prompt, params, pacing=pacing)
        return [chunk async for chunk in backend.generate(request)]

    return asyncio.run(collect())


def same_reply(a: list[GenerationChunk], b: list[GenerationChunk]) -> bool:
    return "".join(c.text for c in a) == "".join(c.text for c in b) and [
        t for c in a for t in c.token_ids
    ] == [t for c in b for t in c.token_ids]


def check_groups_tokens_with_the_same_text(backend: Any, interval: int = 4) -> None:
    single, grouped = frames(backend, Pacing()), frames(backend, Pacing(interval))
    assert same_reply(grouped, single)
    # The engine holds each group, so the event loop wakes once per group, not per token.
    assert len(grouped) <= 2 + 17 // interval < len(single)
    assert all(len(c.token_ids) >= interval for c in grouped[1:-1])
    assert grouped[-1].finish_reason == "length"


def check_a_time_window_holds_tokens_until_it_has_passed(backend: Any) -> None:
    """A window longer than the generation: the first text (with any textless tokens
    before it), then everything else with the end. A window already past at every step
    holds nothing back."""
    single = frames(backend, Pacing())
    held = frames(backend, Pacing(seconds=3600))
    passed = frames(backend, Pacing(seconds=1e-9))
    assert same_reply(held, single) and same_reply(passed, single)
    assert len(held) <= 2 < len(single) and held[-1].finish_reason == "length"
    assert all(c.text for c in held[:-1])  # only the first text goes before the end
    assert len(passed) > 2
