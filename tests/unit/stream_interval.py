"""One check for every batching engine: with a stream interval, the engine hands tokens on
in groups (the first text at once, the end with the rest) and the text stays the same."""

from __future__ import annotations

import asyncio
from typing import Any

from palestra.core.types import GenerationChunk, GenerationRequest, SamplingParams


def check_groups_tokens_with_the_same_text(backend: Any, interval: int = 4) -> None:
    prompt = backend.chat_prompt([{"role": "user", "content": "Hello! Who are you?"}])
    params = SamplingParams(temperature=0, max_tokens=18, ignore_eos=True)

    async def chunks(every: int) -> list[GenerationChunk]:
        request = GenerationRequest(prompt, params, stream_interval=every)
        return [chunk async for chunk in backend.generate(request)]

    single, grouped = asyncio.run(chunks(1)), asyncio.run(chunks(interval))
    assert "".join(c.text for c in grouped) == "".join(c.text for c in single)
    assert [t for c in grouped for t in c.token_ids] == [t for c in single for t in c.token_ids]
    # The engine holds each group, so the event loop wakes once per group, not per token.
    assert len(grouped) <= 2 + 17 // interval < len(single)
    assert all(len(c.token_ids) >= interval for c in grouped[1:-1])
    assert grouped[-1].finish_reason == "length"
