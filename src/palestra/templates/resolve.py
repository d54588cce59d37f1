"""Choosing the template for a model, in order: the user's explicit name or file; the
tokenizer's own `chat_template`; the model registry's default for the family."""

from __future__ import annotations

from typing import Any

from palestra.core.errors import TemplateError
from palestra.plugins import get_template, list_templates
from palestra.templates.spec import ChatTemplate


def template_from_tokenizer(tokenizer: Any, name: str = "tokenizer") -> ChatTemplate | None:
    """The tokenizer's own Jinja chat template, if it has one."""
    source = getattr(tokenizer, "chat_template", None)
    if isinstance(source, dict):  # several named templates: take the default
        source = source.get("default")
    if not source:
        return None
    eos = getattr(tokenizer, "eos_token", None)
    return ChatTemplate(
        name=name,
        jinja=source,
        stop_tokens=(str(eos),) if eos else (),
        bos_token=str(getattr(tokenizer, "bos_token", None) or ""),
        eos_token=str(eos or ""),
        source="tokenizer_config.json",
    )


def resolve_template(
    explicit: str | None = None,
    tokenizer: Any = None,
    family_default: str | None = None,
) -> ChatTemplate:
    """The template to use; raises TemplateError saying what to pass when nothing fits."""
    if explicit:
        template = get_template(explicit)
    elif tokenizer is not None and (own := template_from_tokenizer(tokenizer)) is not None:
        return own
    elif family_default:
        template = get_template(family_default)
    else:
        names = ", ".join(t.name for t in list_templates())
        raise TemplateError(
            "no chat template: the tokenizer has none and the model family is unknown "
            "(Palestra never guesses one); pass --conv-template NAME or a .jinja file; "
            f"names: {names}"
        )
    if tokenizer is not None:
        bos, eos = getattr(tokenizer, "bos_token", None), getattr(tokenizer, "eos_token", None)
        template = template.with_special_tokens(
            str(bos) if bos else None, str(eos) if eos else None
        )
    return template
