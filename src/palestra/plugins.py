"""Plugins: how templates, model families and backends get into Palestra.

A plugin is any object or module published under the `palestra.plugins` entry-point group.
It may define `register_templates()`, `register_models()` and `register_backends()`, each
returning a list. Palestra's own built-ins (`palestra.builtin_plugin`) register the same way;
if the package metadata is missing (a bare source checkout), the built-in plugin is loaded
directly so Palestra still works.
"""

from __future__ import annotations

import logging
from functools import lru_cache
from importlib.metadata import entry_points
from typing import Any

GROUP = "palestra.plugins"
HOOKS = {
    "templates": "register_templates",
    "models": "register_models",
    "backends": "register_backends",
}
logger = logging.getLogger(__name__)


@lru_cache(maxsize=1)
def load_plugins() -> tuple[tuple[str, Any], ...]:
    plugins: list[tuple[str, Any]] = []
    for entry in entry_points(group=GROUP):
        try:
            plugins.append((entry.name, entry.load()))
        except Exception as exc:  # a broken third-party plugin must not break Palestra
            logger.warning("plugin %s failed to load: %s", entry.name, exc)
    if not any(name == "builtin" for name, _ in plugins):
        from palestra import builtin_plugin

        plugins.insert(0, ("builtin", builtin_plugin))
    return tuple(plugins)


def collect(kind: str) -> list[Any]:
    """Everything every plugin registers of one kind, built-ins first."""
    hook = HOOKS[kind]
    items: list[Any] = []
    for _, plugin in load_plugins():
        register = getattr(plugin, hook, None)
        if register is not None:
            items.extend(register())
    return items
