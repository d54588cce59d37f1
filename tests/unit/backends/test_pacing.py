"""Stream pacing (`--stream-interval`): chunks gather into frames of N tokens, the first
text and the end go out at once, nothing is lost or reordered, and a failure still delivers
what came before it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from palestra.backends.pacing import due, paced
from palestra.core.types import GenerationChunk, Pacing, Usage


def tokens(count: int) -> list[GenerationChunk]:
    chunks = [GenerationChunk(f"t{i} ", (i,)) for i in range(count)]
    chunks[-1] = GenerationChunk(
        f"t{count - 1} ", (count - 1,), finish_reason="length", usage=Usage(5, count)
    )
    return chunks


async def source(
    chunks: list[GenerationChunk], failure: Exception | None = None
) -> AsyncIterator[GenerationChunk]:
    for chunk in chunks:
        yield chunk
    if failure is not None:
        raise failure


def frames(chunks: AsyncIterator[GenerationChunk], interval: int) -> list[GenerationChunk]:
    async def run() -> list[GenerationChunk]:
        return [frame async for frame in paced(chunks, interval)]

    return asyncio.run(run())


def test_frames_hold_the_interval_after_the_first_text_and_end_at_once() -> None:
    chunks = tokens(11)
    got = frames(source(chunks), 4)
    assert [len(f.token_ids) for f in got] == [1, 4, 4, 2]
    assert "".join(f.text for f in got) == "".join(c.text for c in chunks)
    assert [t for f in got for t in f.token_ids] == list(range(11))
    assert got[-1].finish_reason == "length" and got[-1].usage == Usage(5, 11)
    assert all(f.finish_reason is None for f in got[:-1])


def test_interval_one_passes_every_chunk_through() -> None:
    chunks = tokens(5)
    assert frames(source(chunks), 1) == chunks


def test_chunks_without_text_wait_for_the_first_text() -> None:
    silent = [GenerationChunk("", (i,)) for i in range(2)]  # bytes of one character
    chunks = [*silent, *tokens(3)]
    got = frames(source(chunks), 8)
    assert [f.token_ids for f in got] == [(0, 1, 0), (1, 2)]


def test_a_failure_still_delivers_what_was_held_then_raises() -> None:
    chunks = [*tokens(3)[:2], GenerationChunk("x ", (9,))]
    delivered: list[GenerationChunk] = []

    async def run() -> None:
        async for frame in paced(source(chunks, RuntimeError("boom")), 8):
            delivered.append(frame)

    with pytest.raises(RuntimeError, match="boom"):
        asyncio.run(run())
    assert "".join(f.text for f in delivered) == "t0 t1 x "


def test_due_counts_tokens_and_goes_at_once_for_an_error_or_the_end() -> None:
    two = [GenerationChunk("a", (1,)), GenerationChunk("b", (2,))]
    assert not due(two, Pacing(4), started=True)
    assert due(two, Pacing(2), started=True)
    assert due(two, Pacing(4), started=False)  # the first text
    assert due([*two, ValueError("x")], Pacing(4), started=True)
    assert due([GenerationChunk("", (), finish_reason="stop")], Pacing(4), started=True)


def test_due_waits_for_the_time_since_the_last_frame_and_the_tokens_both() -> None:
    two = [GenerationChunk("a", (1,)), GenerationChunk("b", (2,))]
    window = Pacing(seconds=0.02)
    assert not due(two, window, started=True, waited=0.019)
    assert due(two, window, started=True, waited=0.02)
    assert not due([], window, started=True, waited=1.0)
    assert due(two, window, started=False, waited=0.0)  # the first text at once
    assert due([*two, ValueError("x")], window, started=True, waited=0.0)
    assert due([GenerationChunk("", (), finish_reason="stop")], window, started=True, waited=0.0)
    assert not due(two, Pacing(4, 0.02), started=True, waited=1.0)  # and four tokens
    assert Pacing().every_token and not window.every_token and not Pacing(2).every_token
