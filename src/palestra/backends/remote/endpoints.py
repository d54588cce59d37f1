"""`RemoteEndpoint`: one model hosted by an API provider, and reading FastChat's
`--register-api-endpoint-file` format into endpoints.

The file is a JSON object keyed by the name Palestra shows, each value with `model_name`
(the provider's id), `api_type` (openai, anthropic, gemini, mistral), `api_base`, `api_key`
or `api_key_env` (the name of an environment variable holding the key), `anony_only`,
`recommended_config`, `text-arena`, `vision-arena`. Keys are held in `Secret`, whose repr
and str never show them, so an endpoint can be logged or stored without leaking one.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from palestra.core.errors import InvalidRequestError

API_TYPES: tuple[str, ...] = ("openai", "anthropic", "gemini", "mistral")
# Providers whose chat API is OpenAI-compatible at a known address.
DEFAULT_API_BASES: dict[str, str] = {
    "openai": "https://api.openai.com/v1",
    "anthropic": "https://api.anthropic.com",
    "gemini": "https://generativelanguage.googleapis.com/v1beta/openai/",
    "mistral": "https://api.mistral.ai/v1",
}
DEFAULT_KEY_ENVS: dict[str, str] = {
    "openai": "OPENAI_API_KEY",
    "anthropic": "ANTHROPIC_API_KEY",
    "gemini": "GEMINI_API_KEY",
    "mistral": "MISTRAL_API_KEY",
}


class Secret:
    """A value that never appears in repr, str, logs or stored records."""

    __slots__ = ("_value",)

    def __init__(self, value: str | None):
        self._value = value or ""

    def reveal(self) -> str:
        return self._value

    def __bool__(self) -> bool:
        return bool(self._value)

    def __repr__(self) -> str:
        return "Secret('***')" if self._value else "Secret('')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


@dataclass(frozen=True)
class RemoteEndpoint:
    name: str  # what Palestra calls the model (UI, API, judge files)
    api_type: str = "openai"
    model_id: str = ""  # what the provider calls it; defaults to `name`
    api_base: str = ""
    api_key: Secret = field(default_factory=lambda: Secret(""))
    api_key_env: str = ""
    context_length: int = 128_000
    max_output_tokens: int = 4096
    anony_only: bool = False
    text_arena: bool = True
    vision_arena: bool = False
    recommended_config: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.api_type not in API_TYPES:
            raise InvalidRequestError(
                f"endpoint {self.name!r}: unknown api_type {self.api_type!r}; "
                f"expected one of {', '.join(API_TYPES)}",
                param="api_type",
            )

    @property
    def provider_model(self) -> str:
        return self.model_id or self.name

    @property
    def base_url(self) -> str:
        return self.api_base or DEFAULT_API_BASES[self.api_type]

    def key(self) -> str:
        """The API key: given inline, else from its environment variable. Palestra's own
        API without keys accepts any value, so an empty key becomes a placeholder for
        OpenAI-compatible servers."""
        if self.api_key:
            return self.api_key.reveal()
        env = self.api_key_env or DEFAULT_KEY_ENVS[self.api_type]
        value = os.environ.get(env, "")
        if not value and self.api_type != "openai":
            raise InvalidRequestError(
                f"endpoint {self.name!r} needs an API key: set ${env} or give api_key",
                param="api_key",
            )
        return value or "none"

    def describe(self) -> dict[str, Any]:
        """A record safe to log or store (no key)."""
        return {
            "name": self.name,
            "api_type": self.api_type,
            "model_id": self.provider_model,
            "api_base": self.base_url,
        }


def endpoint_from_record(name: str, record: dict[str, Any]) -> RemoteEndpoint:
    if not isinstance(record, dict):
        raise InvalidRequestError(f"endpoint {name!r}: expected an object, got {record!r}")
    known = {
        "model_name",
        "api_type",
        "api_base",
        "api_key",
        "api_key_env",
        "anony_only",
        "recommended_config",
        "text-arena",
        "vision-arena",
        "context_length",
        "max_output_tokens",
    }
    unknown = sorted(set(record) - known)
    if unknown:
        raise InvalidRequestError(
            f"endpoint {name!r}: unknown field(s) {', '.join(unknown)}; "
            f"known: {', '.join(sorted(known))}"
        )
    return RemoteEndpoint(
        name=name,
        api_type=str(record.get("api_type", "openai")),
        model_id=str(record.get("model_name") or name),
        api_base=str(record.get("api_base") or ""),
        api_key=Secret(record.get("api_key")),
        api_key_env=str(record.get("api_key_env") or ""),
        context_length=int(record.get("context_length", 128_000)),
        max_output_tokens=int(record.get("max_output_tokens", 4096)),
        anony_only=bool(record.get("anony_only", False)),
        text_arena=bool(record.get("text-arena", True)),
        vision_arena=bool(record.get("vision-arena", False)),
        recommended_config=dict(record.get("recommended_config") or {}),
    )


def load_endpoint_file(path: str | Path) -> list[RemoteEndpoint]:
    """Endpoints from a FastChat-style JSON file (see the module docstring)."""
    file = Path(path)
    if not file.is_file():
        raise InvalidRequestError(f"API endpoint file {str(file)!r} does not exist")
    try:
        data = json.loads(file.read_text("utf-8"))
    except json.JSONDecodeError as exc:
        raise InvalidRequestError(f"API endpoint file {str(file)!r} is not JSON: {exc}") from exc
    if not isinstance(data, dict) or not data:
        raise InvalidRequestError(
            f"API endpoint file {str(file)!r} must be a non-empty object keyed by model name"
        )
    return [endpoint_from_record(name, record) for name, record in data.items()]
