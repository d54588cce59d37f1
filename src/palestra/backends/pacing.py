"""Stream pacing: how a generation's chunks gather into frames before they are handed on
(vLLM's and SGLang's `--stream-interval` counts tokens; Palestra also counts time).

Every frame costs the same on each hop whatever it carries: a wake-up of the worker's
event loop, a JSON line written by the worker, read and re-framed by the API server, parsed
by the client. For a small model on a CPU that per-frame work weighs as much as the model
(benchmarks/README.md). A frame that holds N tokens divides it by N; one that waits for
`Pacing.seconds` since the last frame holds as many tokens as the model made meanwhile, so
a fast model sends fewer, fuller frames and a model slower than that still sends a token
per frame. The first text and the end of a generation (or its failure) go out at once, so
the time to first token is unchanged.

`due` is the rule. The batching engines apply all of it when they hand a step's chunks to
the event loop (`delivery.flush`): they step without pause while a sequence runs, so a
held frame goes out at the first step past its time. `paced` applies the token count to
any backend's chunk stream; not the time, which would need a timer of its own (a
provider's stream may pause for seconds with text held).
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator, Sequence

from palestra.core.types import GenerationChunk, Pacing, join_chunks


def due(
    held: Sequence[GenerationChunk | BaseException],
    pacing: Pacing,
    started: bool,
    waited: float = math.inf,
) -> bool:
    """Whether the `held` chunks go out now; `started`: text was already handed on;
    `waited`: seconds since the last frame went out (or the request came)."""
    if pacing.every_token:
        return bool(held)
    tokens = 0
    for item in held:
        if isinstance(item, BaseException) or item.finish_reason is not None:
            return True
        if not started and (item.text or item.tool_calls):
            return True
        tokens += len(item.token_ids) or 1  # a provider's chunk may carry no token ids
    return tokens >= pacing.tokens and waited >= pacing.seconds


def has_text(items: Sequence[GenerationChunk | BaseException]) -> bool:
    return any(
        isinstance(item, GenerationChunk) and bool(item.text or item.tool_calls) for item in items
    )


async def paced(
    chunks: AsyncIterator[GenerationChunk], interval: int
) -> AsyncIterator[GenerationChunk]:
    """`chunks` joined into frames of `interval` tokens by `due`; what is held when the
    source fails still goes out before the failure."""
    pacing = Pacing(tokens=interval)
    if pacing.every_token:
        async for chunk in chunks:
            yield chunk
        return
    held: list[GenerationChunk] = []
    started = False
    try:
        async for chunk in chunks:
            held.append(chunk)
            if due(held, pacing, started):
                started = started or has_text(held)
                frame, held = join_chunks(held), []
                yield frame
    except Exception:
        if held:
            yield join_chunks(held)
        raise
    if held:
        yield join_chunks(held)
