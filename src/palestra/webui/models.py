"""`ModelDirectory`: the models the web UI offers, and the backend that answers for each.

Two sources: the models Palestra serves (listed by its OpenAI-compatible API, re-read every
`refresh_seconds`) and API endpoints from FastChat's `--register-api-endpoint-file`. Both
become remote backends behind the same `Backend` seam, so a local model and a hosted one
battle each other the same way. Endpoints marked `anony_only` appear only in battles;
`vision-arena` endpoints accept images, and so do served models whose listing says they
take images (local vision models). A hosted model is sent the chat's system prompt only
when its endpoint says `custom_system_prompt` (FastChat's rule). A model whose provider
keeps failing is left out of battles until it answers again (`backends.remote.outage`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import httpx

from palestra.backends.base import Backend
from palestra.backends.remote import RemoteEndpoint, Secret, remote_backend
from palestra.backends.remote.outage import Outage
from palestra.core.errors import ModelNotFoundError
from palestra.core.types import Message


@dataclass
class ModelEntry:
    name: str
    backend: Backend
    card: str
    anony_only: bool = False
    text_arena: bool = True
    recommended: dict[str, Any] = field(default_factory=dict)
    system_prompt: bool = True  # whether the chat's system prompt is sent
    served: bool = False  # served by Palestra's API (which counts tokens: /tokenize)

    @property
    def vision(self) -> bool:
        """Whether the model takes images (its backend says)."""
        return self.backend.accepts_images

    @property
    def outage(self) -> Outage | None:
        """A hosted model's record of failures (None for other backends)."""
        return getattr(self.backend, "outage", None)


class ModelDirectory:
    def __init__(
        self,
        api_base: str | None = None,
        endpoints: list[RemoteEndpoint] | None = None,
        api_key: str | None = None,
        refresh_seconds: float = 30.0,
    ):
        self.api_base = api_base.rstrip("/") if api_base else None
        self.api_key = api_key
        self.refresh_seconds = refresh_seconds
        self._served: dict[str, ModelEntry] = {}
        self._listed_at = 0.0
        self._endpoints = {
            e.name: ModelEntry(
                e.name,
                remote_backend(e),
                f"{e.api_type} model `{e.provider_model}`"
                + ("" if e.custom_system_prompt else "; it is sent no system prompt"),
                anony_only=e.anony_only,
                text_arena=e.text_arena,
                recommended=dict(e.recommended_config),
                system_prompt=e.custom_system_prompt,
            )
            for e in endpoints or []
        }

    @classmethod
    def of(cls, entries: list[ModelEntry]) -> ModelDirectory:
        """A directory of ready-made entries (tests, embedding the UI elsewhere)."""
        directory = cls()
        directory._endpoints = {e.name: e for e in entries}
        return directory

    def _served_models(self, refresh: bool) -> dict[str, ModelEntry]:
        if self.api_base is None:
            return {}
        fresh = time.monotonic() - self._listed_at < self.refresh_seconds
        if self._served and (fresh or not refresh):
            return self._served
        headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
        try:
            listed = httpx.get(f"{self.api_base}/models", headers=headers, timeout=5).json()
            vision = {
                m["id"]: "image" in (m.get("input_modalities") or ())
                for m in listed.get("data", [])
            }
        except (httpx.HTTPError, ValueError, KeyError, AttributeError, TypeError):
            return self._served  # keep the last list while the API is unreachable
        entries = {}
        for name, takes_images in vision.items():
            known = self._served.get(name)
            entries[name] = (
                known
                if known is not None and known.vision == takes_images
                else ModelEntry(
                    name,
                    remote_backend(
                        RemoteEndpoint(
                            name,
                            api_base=self.api_base,
                            api_key=Secret(self.api_key or "none"),
                            vision_arena=takes_images,
                        )
                    ),
                    _card(name, f"served by Palestra at {self.api_base}"),
                    served=True,
                )
            )
        self._served, self._listed_at = entries, time.monotonic()
        return entries

    def entries(self, refresh: bool = True) -> dict[str, ModelEntry]:
        """Every model. `refresh=False` answers from the last listing (no HTTP call: what
        the UI's async handlers use, so a slow API never stalls other users' streams);
        page loads and the model pickers refresh it, in Gradio's worker threads."""
        return {**self._served_models(refresh), **self._endpoints}

    def get(self, name: str) -> ModelEntry:
        entries = self.entries(refresh=False)
        if name not in entries:
            known = ", ".join(sorted(entries)) or "none"
            raise ModelNotFoundError(f"model {name!r} is not available; available: {known}")
        return entries[name]

    def chat_models(self) -> list[str]:
        return sorted(n for n, e in self.entries().items() if not e.anony_only)

    def battle_models(self, vision: bool = False) -> list[str]:
        """Models that may battle now: able to (images, text arena) and not out of service
        (a model out of service is tried again by one battle every so often)."""
        entries = self.entries(refresh=False)
        able = [e for e in entries.values() if (e.vision if vision else e.text_arena)]
        return sorted(e.name for e in able if _may_battle(e.outage))

    async def context_left(self, entry: ModelEntry, messages: list[Message]) -> int | None:
        """Tokens the model's context leaves after `messages`, counted by the serving API
        with the model's own template (/tokenize); None for hosted models, or when the API
        cannot say (the request then goes with the page's cap)."""
        if not (entry.served and self.api_base):
            return None
        root = self.api_base.removesuffix("/v1")
        body = {
            "model": entry.name,
            "messages": [{"role": m.role, "content": m.content} for m in messages],
        }
        headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
        try:
            async with httpx.AsyncClient(timeout=5) as client:
                counted = (await client.post(f"{root}/tokenize", json=body, headers=headers)).json()
            return int(counted["max_model_len"]) - int(counted["count"])
        except (httpx.HTTPError, ValueError, KeyError, TypeError):
            return None

    def outages(self) -> dict[str, Outage]:
        """Models whose provider is not answering, by name."""
        entries = self.entries(refresh=False)
        down = {n: e.outage for n, e in sorted(entries.items())}
        return {n: outage for n, outage in down.items() if outage is not None and outage.out}


def _may_battle(outage: Outage | None) -> bool:
    return outage is None or outage.may_battle()


def _card(name: str, where: str) -> str:
    """What the model registry knows about a served model (FastChat's model cards)."""
    from palestra.plugins import model_registry

    spec = model_registry().resolve(name)
    if spec is None or not spec.card.description:
        return where
    link = f" ([link]({spec.card.link}))" if spec.card.link else ""
    license_ = f", license {spec.card.license}" if spec.card.license else ""
    return f"{spec.card.description}{link}{license_}; {where}"
