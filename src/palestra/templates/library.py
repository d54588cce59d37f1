"""The named-template library: legacy templates shipped as data files in `data/`, plus any
that plugins register. Looks templates up by name or loads one from a user's file."""

from __future__ import annotations

import json
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Any

from palestra.core.errors import TemplateError
from palestra.templates.spec import ChatTemplate

_FIELDS = {
    "name",
    "template",
    "stop_strings",
    "stop_tokens",
    "stop_token_ids",
    "bos_token",
    "eos_token",
    "default_system",
    "description",
    "source",
}


def template_from_dict(data: dict[str, Any], *, origin: str = "") -> ChatTemplate:
    """A ChatTemplate from a data file's JSON object; other fields become template variables."""
    try:
        return ChatTemplate(
            name=data["name"],
            jinja=data["template"],
            stop_strings=tuple(data.get("stop_strings", ())),
            stop_tokens=tuple(data.get("stop_tokens", ())),
            stop_token_ids=tuple(data.get("stop_token_ids", ())),
            bos_token=data.get("bos_token", ""),
            eos_token=data.get("eos_token", ""),
            default_system=data.get("default_system", ""),
            description=data.get("description", ""),
            source=data.get("source", ""),
            extra={k: v for k, v in data.items() if k not in _FIELDS},
        )
    except KeyError as exc:
        raise TemplateError(
            f"template file {origin or '?'} lacks the field {exc.args[0]!r}"
        ) from exc


def builtin_templates() -> list[ChatTemplate]:
    """The legacy templates shipped with Palestra (registered by the built-in plugin)."""
    folder = resources.files("palestra.templates").joinpath("data")
    found = []
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if entry.name.endswith(".json"):
            found.append(
                template_from_dict(json.loads(entry.read_text("utf-8")), origin=entry.name)
            )
    return found


def load_template_file(path: str | Path) -> ChatTemplate:
    """A template from a user's file: a `.jinja` file, or a `.json` file in the data format."""
    file = Path(path)
    if not file.is_file():
        raise TemplateError(f"template file {str(file)!r} does not exist")
    text = file.read_text("utf-8")
    if file.suffix == ".json":
        return template_from_dict(json.loads(text), origin=str(file))
    return ChatTemplate(name=file.stem, jinja=text, source=str(file))


def find_template(registry: Mapping[str, ChatTemplate], name_or_path: str) -> ChatTemplate:
    """A template by name in `registry`, or from a `.jinja` / `.json` file path."""
    if name_or_path in registry:
        return registry[name_or_path]
    if name_or_path.endswith((".jinja", ".j2", ".json")) or "/" in name_or_path:
        return load_template_file(name_or_path)
    raise TemplateError(
        f"unknown chat template {name_or_path!r}; known templates: {', '.join(sorted(registry))}"
        " (or give a path to a .jinja file)"
    )
