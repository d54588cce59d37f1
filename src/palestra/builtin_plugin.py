"""Palestra's built-in plugin: registers the shipped legacy templates, the model families
the backends and the API provider types through the same hooks a third-party plugin uses."""

from __future__ import annotations

from typing import Any


def register_templates() -> list[Any]:
    from palestra.templates.library import builtin_templates

    return list(builtin_templates())


def register_models() -> list[Any]:
    from palestra.models.families import BUILTIN_FAMILIES

    return list(BUILTIN_FAMILIES)


def register_backends() -> list[Any]:
    from palestra.backends.registry import BUILTIN_BACKENDS

    return list(BUILTIN_BACKENDS)


def register_providers() -> list[Any]:
    from palestra.backends.remote.providers import BUILTIN_PROVIDERS

    return list(BUILTIN_PROVIDERS)
