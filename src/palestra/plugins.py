"""Plugins: how templates, model families and backends get into Palestra, and the tables
they make, which the rest of Palestra reads (`get_template`, `model_registry`,
`backend_factories`).

A plugin is any object or module published under the `palestra.plugins` entry-point group.
It may define `register_templates()`, `register_models()`, `register_backends()` and
`register_providers()` (API provider types: `backends.remote.providers.ProviderType`), each
returning a list. Palestra's own built-ins (`palestra.builtin_plugin`) register the same way
and always come first. An id registered twice is an error unless the later plugin lists it
in its `overrides` (for example `overrides = {"templates:chatml"}`).

`PALESTRA_PLUGINS` allow-lists third-party plugins by entry-point name (comma list; `none`
or empty: built-ins only; unset: every installed plugin). The registries themselves
(`templates.library`, `models.registry`, `backends.registry`) do not import this module.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from functools import lru_cache
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Any

from palestra.core.errors import PalestraError

if TYPE_CHECKING:
    from palestra.backends.base import Backend
    from palestra.backends.registry import BackendFactory
    from palestra.backends.remote.providers import ProviderType
    from palestra.models.registry import ModelRegistry
    from palestra.templates.spec import ChatTemplate

GROUP = "palestra.plugins"
ALLOW_ENV = "PALESTRA_PLUGINS"
HOOKS: dict[str, tuple[str, Callable[[Any], str]]] = {
    "templates": ("register_templates", lambda item: item.name),
    "models": ("register_models", lambda item: item.id),
    "backends": ("register_backends", lambda item: item.name),
    "providers": ("register_providers", lambda item: item.name),
}
logger = logging.getLogger(__name__)


class PluginError(PalestraError):
    """Two plugins registered the same id, and the later one did not say it overrides."""


def allowed_plugins() -> set[str] | None:
    """Third-party plugin names allowed by PALESTRA_PLUGINS; None: all of them."""
    value = os.environ.get(ALLOW_ENV)
    if value is None:
        return None
    names = {name.strip() for name in value.split(",") if name.strip()}
    return set() if names <= {"none"} else names


@lru_cache(maxsize=1)
def load_plugins() -> tuple[tuple[str, Any], ...]:
    from palestra import builtin_plugin

    plugins: list[tuple[str, Any]] = [("builtin", builtin_plugin)]
    allowed = allowed_plugins()
    for entry in entry_points(group=GROUP):
        if entry.name == "builtin" or (allowed is not None and entry.name not in allowed):
            continue
        try:
            plugins.append((entry.name, entry.load()))
        except Exception as exc:  # a broken third-party plugin must not break Palestra
            logger.warning("plugin %s failed to load: %s", entry.name, exc)
    return tuple(plugins)


def collect(kind: str) -> dict[str, Any]:
    """Everything every plugin registers of one kind, by id, built-ins first."""
    hook, key = HOOKS[kind]
    items: dict[str, Any] = {}
    owners: dict[str, str] = {}
    for name, plugin in load_plugins():
        register = getattr(plugin, hook, None)
        if register is None:
            continue
        overrides = set(getattr(plugin, "overrides", ()))
        for item in register():
            item_id = key(item)
            if item_id in items and f"{kind}:{item_id}" not in overrides:
                raise PluginError(
                    f"plugin {name!r} registers {kind} {item_id!r}, which plugin "
                    f"{owners[item_id]!r} already registered; rename it, or add "
                    f"'{kind}:{item_id}' to the plugin's `overrides` to replace it"
                )
            items[item_id] = item
            owners[item_id] = name
    return items


def reset() -> None:
    """Forget the loaded plugins and the tables (tests; after changing PALESTRA_PLUGINS)."""
    for cached in (load_plugins, templates, model_registry, backend_factories, providers):
        cached.cache_clear()


# ---------------------------------------------------------------------- the tables
@lru_cache(maxsize=1)
def templates() -> dict[str, ChatTemplate]:
    return collect("templates")


def get_template(name_or_path: str) -> ChatTemplate:
    """A template by registered name, or from a `.jinja` / `.json` file path."""
    from palestra.templates.library import find_template

    return find_template(templates(), name_or_path)


def list_templates() -> list[ChatTemplate]:
    return sorted(templates().values(), key=lambda t: t.name)


@lru_cache(maxsize=1)
def model_registry() -> ModelRegistry:
    from palestra.models.registry import ModelRegistry

    return ModelRegistry(collect("models").values())


@lru_cache(maxsize=1)
def backend_factories() -> dict[str, BackendFactory]:
    return collect("backends")


def create_backend(name: str, model_path: str | None = None, **kwargs: Any) -> Backend:
    """A backend from the registered factories (see `backends.registry.create_backend`)."""
    from palestra.backends.registry import create_backend as create

    return create(backend_factories(), name, model_path, **kwargs)


@lru_cache(maxsize=1)
def providers() -> dict[str, ProviderType]:
    """API provider types by `api_type`."""
    return collect("providers")


def provider_type(api_type: str, *, endpoint: str = "") -> ProviderType:
    """The provider type named `api_type`; an unknown one is an error listing them all."""
    from palestra.core.errors import InvalidRequestError

    table = providers()
    if api_type not in table:
        where = f"endpoint {endpoint!r}: " if endpoint else ""
        served = sorted(name for name, item in table.items() if not item.retired)
        raise InvalidRequestError(
            f"{where}unknown api_type {api_type!r}; expected one of {', '.join(served)}",
            param="api_type",
        )
    return table[api_type]
