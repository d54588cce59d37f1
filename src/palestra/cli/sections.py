"""Sections that several commands share: every backend's options (from the registered
backend factories, plugins' included), and building the chosen backend from them."""

from __future__ import annotations

from typing import TYPE_CHECKING

from palestra.backends.options import ModelSettings
from palestra.cli.options import Parsed, Section
from palestra.core.errors import InvalidRequestError
from palestra.core.settings import Settings

if TYPE_CHECKING:
    from palestra.backends.base import Backend


def backend_sections() -> list[Section]:
    """One optional section per registered backend: its options reach it only when given."""
    from palestra.plugins import backend_factories

    return [
        Section(f"backend:{name}", factory.options, optional=True, label=name)
        for name, factory in sorted(backend_factories().items())
    ]


def chosen_backend_options(parsed: Parsed, backend: str) -> Settings:
    """The chosen backend's settings from what the user gave (an option of another backend
    is an error that lists this one's)."""
    sections = backend_sections()
    if not any(s.name == f"backend:{backend}" for s in sections):
        known = ", ".join(s.label for s in sections)
        raise InvalidRequestError(f"unknown backend {backend!r}; available: {known}")
    return parsed.optional_settings(f"backend:{backend}", sections)


def model_backend(parsed: Parsed, model: ModelSettings, index: int, path: str | None) -> Backend:
    """Load the index-th model of `model`, at `path` (`model.local_path(index)`), with the
    chosen backend's options."""
    from palestra.plugins import create_backend

    return create_backend(
        model.backend,
        path,
        model_name=model.model_names[index] if model.model_names else None,
        conv_template=model.conv_template,
        options=chosen_backend_options(parsed, model.backend),
    )
