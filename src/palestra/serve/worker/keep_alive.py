"""`KeepAlive`: a worker's model that lets go of its memory after `--keep-alive` idle
seconds and loads again on the next request, as Ollama's keep_alive does.

The model loads once when the worker starts (a bad model fails at once, and its facts:
name, template, context length, capacity, whether it takes images, are read then and kept,
so the worker stays registered and answers `/status` while unloaded). A request holds the
model from before it queues until its stream ends (`hold`); only a model that nobody holds
and that has been idle for the whole keep-alive is unloaded. The controller keeps routing
to the worker: the next request waits for the load (its first token comes that much later).
"""

from __future__ import annotations

import asyncio
import gc
import logging
import sys
import time
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

from palestra.backends.base import Backend, BackendHealth
from palestra.core.types import Conversation, GenerationChunk, GenerationRequest, SamplingParams
from palestra.templates.spec import ChatTemplate

logger = logging.getLogger(__name__)


def parse_duration(text: str) -> float | None:
    """Seconds from Ollama's spellings: "300", "90s", "5m", "1h"; a negative number: keep
    the model loaded for ever (None)."""
    value = text.strip().lower()
    scale = {"s": 1, "m": 60, "h": 3600}.get(value[-1:], 0)
    try:
        seconds = float(value[:-1] if scale else value) * (scale or 1)
    except ValueError:
        raise ValueError(
            f"keep-alive {text!r} is not a duration; give seconds or 90s, 5m, 1h (-1: for ever)"
        ) from None
    return None if seconds < 0 else seconds


class KeepAlive(Backend):
    def __init__(self, load: Callable[[], Backend], seconds: float):
        self._load = load
        self.seconds = seconds
        self._backend: Backend | None = load()
        first = self._backend
        self.name = first.name
        self._model_name = first.model_name
        self._template = first.template
        self._context_length = first.context_length
        self._capacity = first.capacity
        self._accepts_images = first.accepts_images
        self._holders = 0
        self._last_used = time.monotonic()
        self._lock: asyncio.Lock | None = None
        self.loads, self.unloads = 1, 0

    # ------------------------------------------------------------------ facts
    @property
    def model_name(self) -> str:
        return self._model_name

    @property
    def template(self) -> ChatTemplate:
        return self._template

    @property
    def context_length(self) -> int:
        return self._context_length

    @property
    def capacity(self) -> int:
        return self._capacity

    @property
    def accepts_images(self) -> bool:
        return self._accepts_images

    @property
    def loaded(self) -> bool:
        return self._backend is not None

    # ------------------------------------------------------------------ life cycle
    async def hold(self) -> Callable[[], None]:
        """Load the model if it was let go; it stays until the returned release is called."""
        self._holders += 1
        try:
            if self._backend is None:
                self._lock = self._lock or asyncio.Lock()
                async with self._lock:
                    if self._backend is None:
                        started = time.monotonic()
                        self._backend = await asyncio.to_thread(self._load)
                        self.loads += 1
                        logger.info(
                            "%s loaded again in %.1f s", self.model_name, time.monotonic() - started
                        )
        except BaseException:
            self._holders -= 1
            raise
        released = False

        def release() -> None:
            nonlocal released
            if not released:
                released = True
                self._holders -= 1
                self._last_used = time.monotonic()

        return release

    async def unload_if_idle(self) -> bool:
        """Let the model go if nobody holds it and it has been idle for the keep-alive."""
        idle = time.monotonic() - self._last_used
        if self._backend is None or self._holders or idle < self.seconds:
            return False
        backend, self._backend = self._backend, None
        self.unloads += 1  # with `loaded` turning false: /health never shows one without the other
        await backend.close()  # an engine process takes up to a second to exit
        del backend
        gc.collect()
        torch = sys.modules.get("torch")
        if torch is not None and torch.cuda.is_available():
            torch.cuda.empty_cache()
        logger.info("%s unloaded after %.0f s idle", self.model_name, idle)
        return True

    async def watch(self) -> None:
        """Check for idleness until cancelled (the worker runs this beside its server)."""
        while True:
            await asyncio.sleep(max(0.2, min(self.seconds / 4, 30.0)))
            await self.unload_if_idle()

    def _model(self) -> Backend:
        if self._backend is None:
            raise RuntimeError(f"{self.model_name} is unloaded; hold() it first")
        return self._backend

    # ------------------------------------------------------------------ the seam, forwarded
    def generate(self, request: GenerationRequest) -> AsyncIterator[GenerationChunk]:
        return self._model().generate(request)

    def prepare(self, request: GenerationRequest) -> GenerationRequest:
        return self._model().prepare(request)

    def render(self, conversation: Conversation) -> str:
        return self._model().render(conversation)

    def prompt_tokens(self, request: GenerationRequest) -> int:
        return self._model().prompt_tokens(request)

    def tokenize(self, text: str) -> list[int]:
        return self._model().tokenize(text)

    def detokenize(self, token_ids: Sequence[int]) -> str:
        return self._model().detokenize(token_ids)

    def count_tokens(self, text: str) -> int:
        return self._model().count_tokens(text)

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        return await self._model().embed(texts)

    def check(self, sampling: SamplingParams) -> None:
        self._model().check(sampling)

    async def health(self) -> BackendHealth:
        keep: dict[str, Any] = {
            "loaded": self.loaded,
            "keep_alive_s": self.seconds,
            "loads": self.loads,
            "unloads": self.unloads,
        }
        if self._backend is None:
            return BackendHealth(True, {"model": self.model_name, "backend": self.name, **keep})
        health = await self._backend.health()
        return BackendHealth(health.ok, {**health.detail, **keep})

    async def close(self) -> None:
        if self._backend is not None:
            await self._backend.close()
            self._backend = None
