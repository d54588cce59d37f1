"""The API server's choice streams: chunks that queue up while the client is slower than
the workers go out joined (fewer frames, the same text, usage and order per choice)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from palestra.serve.openai.choices import ChoiceStreams
from palestra.serve.wire import ChunkMessage


class BurstingUpstream:
    """Each choice's worker writes all its chunks at once, before the client reads."""

    async def generate(self, model: str, payload: dict[str, Any]) -> AsyncIterator[ChunkMessage]:
        async def chunks() -> AsyncIterator[ChunkMessage]:
            word = payload["word"]
            for i in range(20):
                yield ChunkMessage(text=f"{word}{i} ", token_ids=[i])
            yield ChunkMessage(finish_reason="length", prompt_tokens=3, completion_tokens=20)

        return chunks()


def test_chunks_that_piled_up_go_out_as_one_frame_per_choice() -> None:
    async def scenario() -> list[tuple[int, ChunkMessage]]:
        streams = ChoiceStreams(BurstingUpstream(), "m", [{"word": "a"}, {"word": "b"}])  # type: ignore[arg-type]
        await asyncio.sleep(0.05)  # both workers are done before the client reads
        await streams.first()
        frames = [item async for item in streams]
        await streams.aclose()
        return frames

    frames = asyncio.run(scenario())
    assert len(frames) == 2  # 42 chunks in all, two frames
    for index, word in enumerate("ab"):
        [chunk] = [c for i, c in frames if i == index]
        assert chunk.text == "".join(f"{word}{i} " for i in range(20))
        assert chunk.token_ids == list(range(20))
        assert (chunk.finish_reason, chunk.completion_tokens) == ("length", 20)
