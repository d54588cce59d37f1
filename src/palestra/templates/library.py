"""The named-template library: legacy templates shipped as data, plus any that plugins
register. Looks templates up by name or loads one from a user's file.

Two kinds of data: `data/NAME.json`, one hand-written Jinja template per file following the
model's official format (special tokens included); and `fastchat.json`, every FastChat
conversation template with a prompt format of its own, in FastChat's terms (roles,
separators, system template), each rendered by the Jinja of its separator style in
`styles/`. A hand-written file wins the bare name; FastChat's exact rendering of that name
stays registered as `fastchat:NAME`."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import replace
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
    found = {t.name: t for t in fastchat_templates()}
    folder = resources.files("palestra.templates").joinpath("data")
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if entry.name.endswith(".json"):
            template = template_from_dict(json.loads(entry.read_text("utf-8")), origin=entry.name)
            shadowed = found.get(template.name)
            if shadowed is not None:  # FastChat's exact rendering stays reachable
                found[f"fastchat:{template.name}"] = replace(
                    shadowed,
                    name=f"fastchat:{template.name}",
                    description=f"{shadowed.description}; '{template.name}' itself follows "
                    "the model's own card (special tokens included)",
                )
            found[template.name] = template
    return sorted(found.values(), key=lambda t: t.name)


# FastChat's Conversation defaults, for fields a record leaves out.
_FASTCHAT_DEFAULTS: dict[str, Any] = {
    "system_template": "{system_message}",
    "system_message": "",
    "roles": ["USER", "ASSISTANT"],
    "sep": "\n",
    "sep2": "",
    "examples": [],
    "round_offset": 0,
}


def fastchat_templates() -> list[ChatTemplate]:
    """Every template of `fastchat.json` (aliases included), rendered by its style's Jinja."""
    package = resources.files("palestra.templates")
    document = json.loads(package.joinpath("fastchat.json").read_text("utf-8"))
    styles = package.joinpath("styles")
    preamble = styles.joinpath("_preamble.jinja").read_text("utf-8")
    found = []
    for record in document["templates"]:
        style = record["style"]
        body = styles.joinpath(f"{style}.jinja").read_text("utf-8")
        fields = {**_FASTCHAT_DEFAULTS, **record}
        stop = fields.pop("stop_str", None)
        template = ChatTemplate(
            name=fields["name"],
            jinja=preamble + body,
            stop_strings=tuple(stop if isinstance(stop, list) else [stop] if stop else []),
            stop_token_ids=tuple(fields.get("stop_token_ids", ())),
            default_system=fields["system_message"],
            description=f"FastChat's {fields['name']} ({style.replace('_', ' ')} style)",
            source=f"{document['source']} ({fields['name']})",
            extra={key: fields[key] for key in (*_FASTCHAT_DEFAULTS, "style")},
        )
        found.append(template)
        found += [replace(template, name=alias) for alias in record.get("aliases", ())]
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
