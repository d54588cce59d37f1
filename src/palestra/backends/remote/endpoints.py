"""`RemoteEndpoint`: one model hosted by an API provider, and reading FastChat's
`--register-api-endpoint-file` format into endpoints.

The file is a JSON object keyed by the name Palestra shows. Every field FastChat's endpoint
files use is read with FastChat's meaning:

- `model_name` (the provider's id), `api_type` (see `palestra providers`), `api_base`,
  `api_key`;
- `anony_only` (battles only), `text-arena` (default true), `vision-arena` (takes images);
- `recommended_config`: `temperature`, `top_p`, `max_new_tokens` override the page's
  sampling in the web UI, and `extra_body` is sent to the provider with every request;
- `custom_system_prompt`: the web UI keeps its system prompt for this model (FastChat
  drops it for API models unless this is true);
- `azure_api_version` (or `api_version`): an Azure OpenAI deployment; so is an `openai`
  model whose `model_name` contains "azure" (FastChat's convention);
- `fixed_temperature`: every request uses this temperature (YandexGPT's models);
- `folder_id` (YandexGPT), `client_name` (Cohere), `assistant_id` (OpenAI assistants,
  a retired API), `stream`, `assistant_first_message` (read, not used by Palestra).

Palestra's own fields: `api_key_env` (the variable holding the key), `context_length`,
`max_output_tokens`, `timeout` (seconds per request), `retries` (429/5xx/unreachable,
with backoff), `reasoning_effort` (reasoning models), `project_id` and `region` (Vertex).
A provider type added by a plugin may read fields of its own (`ProviderType.fields`); they
arrive in `RemoteEndpoint.extra`. An unknown field is a warning naming it, and the file
still loads. An endpoint of a provider type that no longer exists (a shut-down API) is left
out with a warning that says what to use instead.

Keys are held in `Secret`, whose repr and str never show them, so an endpoint can be
logged or stored without leaking one; `scrub` removes a key from any provider message.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from palestra.core.errors import InvalidRequestError

if TYPE_CHECKING:
    from palestra.backends.remote.providers import ProviderType

logger = logging.getLogger(__name__)

AZURE_DEFAULT_API_VERSION = "2024-10-21"  # Azure OpenAI's current GA data-plane version


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
    timeout: float = 120.0
    retries: int = 2
    anony_only: bool = False
    text_arena: bool = True
    vision_arena: bool = False
    recommended_config: dict[str, Any] = field(default_factory=dict)
    custom_system_prompt: bool = False
    azure_api_version: str = ""
    fixed_temperature: float | None = None
    reasoning_effort: str = ""
    stream: bool | None = None  # None: the provider type's default
    folder_id: str = ""
    client_name: str = ""
    project_id: str = ""
    region: str = ""
    extra: dict[str, Any] = field(default_factory=dict)  # a plugin type's own fields

    def __post_init__(self) -> None:
        _ = self.provider  # an unknown api_type fails here, naming the known ones

    @property
    def provider(self) -> ProviderType:
        from palestra.plugins import provider_type

        return provider_type(self.api_type, endpoint=self.name)

    @property
    def provider_model(self) -> str:
        return self.model_id or self.name

    @property
    def base_url(self) -> str:
        return self.api_base or self.provider.default_base

    @property
    def azure(self) -> bool:
        """An Azure OpenAI deployment: an api version given, or FastChat's convention of
        "azure" in the model's name."""
        return bool(self.azure_api_version) or "azure" in self.provider_model.lower()

    @property
    def extra_body(self) -> dict[str, Any]:
        """Provider-specific request fields from `recommended_config.extra_body`."""
        return dict(self.recommended_config.get("extra_body") or {})

    def key(self) -> str:
        """The API key: given inline, else from its environment variable. A provider type
        whose servers may run without keys (OpenAI-compatible ones) gets a placeholder."""
        if self.api_key:
            return self.api_key.reveal()
        provider = self.provider
        env = self.api_key_env or provider.key_env
        value = os.environ.get(env, "") if env else ""
        if not value and provider.key_required:
            raise InvalidRequestError(
                f"endpoint {self.name!r} needs an API key: set ${env} or give api_key",
                param="api_key",
            )
        return value or "none"

    def scrub(self, text: str) -> str:
        """`text` with this endpoint's key, if it appears, replaced by ***."""
        try:
            key = self.key()
        except InvalidRequestError:
            return text
        return text.replace(key, "***") if len(key) >= 8 else text

    def describe(self) -> dict[str, Any]:
        """A record safe to log or store (no key)."""
        return {
            "name": self.name,
            "api_type": self.api_type,
            "model_id": self.provider_model,
            "api_base": self.base_url,
        }


# FastChat's field -> RemoteEndpoint's, for the fields whose names differ.
RENAMED = {
    "model_name": "model_id",
    "text-arena": "text_arena",
    "vision-arena": "vision_arena",
    "api_version": "azure_api_version",
}
# Read by FastChat for features Palestra does not have; accepted without a warning.
READ_NOT_USED = frozenset({"assistant_id", "assistant_first_message"})
FIELD_KINDS: dict[str, type] = {
    "api_type": str,
    "model_id": str,
    "api_base": str,
    "api_key_env": str,
    "context_length": int,
    "max_output_tokens": int,
    "timeout": float,
    "retries": int,
    "anony_only": bool,
    "text_arena": bool,
    "vision_arena": bool,
    "recommended_config": dict,
    "custom_system_prompt": bool,
    "azure_api_version": str,
    "fixed_temperature": float,
    "reasoning_effort": str,
    "stream": bool,
    "folder_id": str,
    "client_name": str,
    "project_id": str,
    "region": str,
}
# The file's spelling of every field (model_name, not model_id; text-arena, not text_arena).
KNOWN_FIELDS = frozenset(
    {*FIELD_KINDS, *RENAMED, "api_key"} - {"model_id", "text_arena", "vision_arena"}
)


def _typed(name: str, key: str, value: Any, kind: type) -> Any:
    if value is None:
        return None
    if kind is bool and isinstance(value, bool):
        return value
    if kind in (int, float) and isinstance(value, (int, float)) and not isinstance(value, bool):
        return kind(value)
    if kind is str and isinstance(value, (str, int, float)) and not isinstance(value, bool):
        return str(value)
    if kind is dict and isinstance(value, dict):
        return dict(value)
    raise InvalidRequestError(
        f"endpoint {name!r}: field {key!r} should be {kind.__name__}, got {value!r}", param=key
    )


def endpoint_from_record(name: str, record: dict[str, Any]) -> RemoteEndpoint:
    """One endpoint from its record; unknown fields are logged and left out."""
    from palestra.plugins import provider_type

    if not isinstance(record, dict):
        raise InvalidRequestError(f"endpoint {name!r}: expected an object, got {record!r}")
    provider = provider_type(str(record.get("api_type") or "openai"), endpoint=name)
    unknown = sorted(set(record) - KNOWN_FIELDS - READ_NOT_USED - provider.fields)
    if unknown:
        logger.warning(
            "endpoint %r: unknown field(s) %s ignored; known: %s",
            name,
            ", ".join(unknown),
            ", ".join(sorted(KNOWN_FIELDS | provider.fields)),
        )
    values: dict[str, Any] = {}
    for key, value in record.items():
        attribute = RENAMED.get(key, key)
        if attribute in FIELD_KINDS and value is not None:
            values[attribute] = _typed(name, key, value, FIELD_KINDS[attribute])
    extra = {key: record[key] for key in provider.fields if key in record}
    return RemoteEndpoint(
        name=name,
        api_key=Secret(record.get("api_key")),
        extra=extra,
        **{"model_id": name, **values},
    )


def load_endpoint_file(path: str | Path) -> list[RemoteEndpoint]:
    """Endpoints from a FastChat-style JSON file (see the module docstring). Endpoints of
    retired provider types are left out, each with a warning."""
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
    endpoints = []
    for name, record in data.items():
        endpoint = endpoint_from_record(name, record)
        if endpoint.provider.retired:
            logger.warning("endpoint %r left out: %s", name, endpoint.provider.retired)
            continue
        endpoints.append(endpoint)
    return endpoints
