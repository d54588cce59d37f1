"""Checks for every batching engine: with a stream interval (tokens) or a time window, the
engine hands tokens on in groups (the first text at once, the end with the rest) and the
text stays the same."""

from __future__ import annotations

import asyncio
from typing import Any

from palestra.core.types import GenerationChunk, GenerationRequest, Pacing, SamplingParams


def check_groups_tokens_with_the_same_text(backend: Any, interval: int = 4) -> None:
    prompt = backend.chat_prompt([{"role": "user", "content": "Hello! Who are you?"}])
    params = SamplingParams(temperature=0, max_tokens=18, ignore_eos=True)

    async def chunks(every: int) -> list[GenerationChunk]:
        request = GenerationRequest(prompt, params, pacing=Pacing(every))
        return [chunk async for chunk in backend.generate(request)]

    single, grouped = asyncio.run(chunks(1)), asyncio.run(chunks(interval))
    assert "".join(c.text for c in grouped) == "".join(c.text for c in single)
    assert [t for c in grouped for t in c.token_ids] == [t for c in single for t in c.token_ids]
    # The engine holds each group, so the event loop wakes once per group, not per token.
    assert len(grouped) <= 2 + 17 // interval < len(single)
    assert all(len(c.token_ids) >= interval for c in grouped[1:-1])
    assert grouped[-1].finish_reason == "length"


def check_a_time_window_holds_tokens_until_it_has_passed(backend: Any) -> None:
    """A window longer than the generation: the first text (with any textless tokens
    before it), then everything else with the end. A window already past at every step
    holds nothing back."""
    prompt = backend.chat_prompt([{"role": "user", "content": "Hello! Who are you?"}])
    params = SamplingParams(temperature=0, max_tokens=18, ignore_eos=True)

    async def chunks(pacing: Pacing) -> list[GenerationChunk]:
        request = GenerationRequest(prompt, params, pacing=pacing)
        return [chunk async for chunk in backend.generate(request)]

    single = asyncio.run(chunks(Pacing()))
    held = asyncio.run(chunks(Pacing(seconds=3600)))
    passed = asyncio.run(chunks(Pacing(seconds=1e-9)))
    assert "".join(c.text for c in held) == "".join(c.text for c in single)
    assert [t for c in held for t in c.token_ids] == [t for c in single for t in c.token_ids]
    assert len(held) <= 2 < len(single) and held[-1].finish_reason == "length"
    assert all(c.text for c in held[:-1])  # only the first text goes before the end
    assert len(passed) > 2 and "".join(c.text for c in passed) == "".join(c.text for c in single)
