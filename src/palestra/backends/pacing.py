"""Stream pacing: how many tokens a generation's chunks may gather before they are handed
on, as one frame (vLLM's and SGLang's `--stream-interval`).

Every frame costs the same on each hop whatever it carries: a wake-up of the worker's
event loop, a JSON line written by the worker, read and re-framed by the API server, parsed
by the client. For a small model on a CPU that per-frame work weighs as much as the model
(benchmarks/README.md); N tokens per frame divide it by N. The first text and the end of a
generation (or its failure) still go out at once, so time to first token is unchanged.

`due` is the rule; the batching engines apply it when they hand a step's chunks to the
event loop (`delivery.flush`), and `paced` applies it to any backend's chunk stream.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence

from palestra.core.types import GenerationChunk, join_chunks


def due(held: Sequence[GenerationChunk | BaseException], interval: int, started: bool) -> bool:
    """Whether the `held` chunks go out now; `started`: text was already handed on."""
    if interval <= 1:
        return bool(held)
    tokens = 0
    for item in held:
        if isinstance(item, BaseException) or item.finish_reason is not None:
            return True
        if not started and (item.text or item.tool_calls):
            return True
        tokens += len(item.token_ids) or 1  # a provider's chunk may carry no token ids
    return tokens >= interval


def has_text(items: Sequence[GenerationChunk | BaseException]) -> bool:
    return any(
        isinstance(item, GenerationChunk) and bool(item.text or item.tool_calls) for item in items
    )


async def paced(
    chunks: AsyncIterator[GenerationChunk], interval: int
) -> AsyncIterator[GenerationChunk]:
    """`chunks` joined into frames by `due`; what is held when the source fails still goes
    out before the failure."""
    if interval <= 1:
        async for chunk in chunks:
            yield chunk
        return
    held: list[GenerationChunk] = []
    started = False
    try:
        async for chunk in chunks:
            held.append(chunk)
            if due(held, interval, started):
                started = started or has_text(held)
                frame, held = join_chunks(held), []
                yield frame
    except Exception:
        if held:
            yield join_chunks(held)
        raise
    if held:
        yield join_chunks(held)
