"""Every FastChat template name resolves, and renders exactly what FastChat's
`Conversation.get_prompt()` renders; every registered template (FastChat's, hand-written
and plugins' alike) gets a loss mask that covers the replies and nothing the user wrote.

`fastchat_prompt` below restates FastChat's separator styles in plain Python (from
fastchat/conversation.py, v0.2.36): an oracle written apart from the Jinja in
`palestra/templates/styles/`, so a slip in either shows up as a difference.
"""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

import pytest

from palestra.core.errors import TemplateError
from palestra.plugins import get_template, list_templates
from palestra.templates.library import fastchat_templates
from palestra.templates.render import render_conversation, render_prompt
from palestra.templates.resolve import resolve_template
from tests.shared_data import SHARED_DATA, needs_shared_data

SYSTEM = "You are terse."
TURNS = [
    {"role": "user", "content": "Hello there!"},
    {"role": "assistant", "content": "Hi. How can I help?"},
    {"role": "user", "content": "Name a colour.\nJust one."},
    {"role": "assistant", "content": "Blue."},
]
# FastChat's one-turn-only or not prefix-stable formats: no loss mask can be derived.
NO_MASK = {"cllm": "keeps only the last exchange", "yuan2": "ends every prompt with <sep>"}


def _records() -> list[dict[str, Any]]:
    data = resources.files("palestra.templates").joinpath("fastchat.json").read_text("utf-8")
    records = []
    for record in json.loads(data)["templates"]:
        records.append(record)
        records += [{**record, "name": alias} for alias in record.get("aliases", ())]
    return records


RECORDS = {r["name"]: r for r in _records()}


def fastchat_prompt(record: dict[str, Any], system: str | None, turns: list[Any]) -> str:
    """FastChat's get_prompt for `turns` ((role name, text or None for the reply slot))."""
    style = record["style"]
    roles = record.get("roles", ["USER", "ASSISTANT"])
    sep, sep2 = record.get("sep", "\n"), record.get("sep2", "")
    message = record.get("system_message", "") if system is None else system
    prompt = record.get("system_template", "{system_message}").format(system_message=message)
    seps = [sep, sep2]
    out = ""
    if style in ("add_colon_single", "add_colon_space_single", "robin"):
        out = prompt + sep
        for role, text in turns:
            if style == "robin":
                out += f"{role}:\n{text}{sep}" if text else f"{role}:\n"
            elif text:
                out += f"{role}: {text}{sep}"
            else:
                out += f"{role}: " if style == "add_colon_space_single" else f"{role}:"
    elif style in ("add_colon_two", "deepseek_chat"):
        out = prompt + (seps[0] if style == "add_colon_two" else "")
        for i, (role, text) in enumerate(turns):
            out += f"{role}: {text}{seps[i % 2]}" if text else f"{role}:"
    elif style == "add_new_line_single":
        out = prompt + sep if prompt else ""
        for role, text in turns:
            out += f"{role}\n{text}{sep}" if text else f"{role}\n"
    elif style in ("no_colon_single", "no_colon_two"):
        out = prompt
        for i, (role, text) in enumerate(turns):
            end = sep if style == "no_colon_single" else seps[i % 2]
            out += f"{role}{text}{end}" if text else role
    elif style == "rwkv":
        out = prompt
        for role, text in turns:
            if text:
                out += f"{role}: " + text.replace("\r\n", "\n").replace("\n\n", "\n") + "\n\n"
            else:
                out += f"{role}:"
    elif style == "llama2":
        out = prompt if message else "[INST] "
        for i, (_, text) in enumerate(turns):
            tag = roles[i % 2]
            if text:
                out += text + " " if i == 0 else f"{tag} {text}{seps[i % 2]}"
            else:
                out += tag
    elif style == "llama3":
        out = "<|begin_of_text|>" + (prompt if message else "")
        for role, text in turns:
            out += f"<|start_header_id|>{role}<|end_header_id|>\n\n"
            out += f"{text.strip()}<|eot_id|>" if text else ""
    elif style == "chatglm":
        out = prompt + sep if prompt else ""
        for i, (role, text) in enumerate(turns):
            if i % 2 == 0:
                out += f"[Round {i // 2 + record.get('round_offset', 0)}]{sep}"
            out += f"{role}：{text}{sep}" if text else f"{role}："
    elif style == "chatml":
        out = prompt + sep + "\n" if prompt else ""
        for role, text in turns:
            out += f"{role}\n{text}{sep}\n" if text else f"{role}\n"
    elif style == "chatglm3":
        out = prompt if message else ""
        for role, text in turns:
            out += f"{role}\n{text}" if text else role
    elif style == "chatintern":
        out = prompt
        for i, (role, text) in enumerate(turns):
            out += "<s>" if i % 2 == 0 else ""
            out += f"{role}:{text}{seps[i % 2]}\n" if text else f"{role}:"
    elif style == "dolly":
        out = prompt
        for i, (role, text) in enumerate(turns):
            if text:
                out += f"{role}:\n{text}{seps[i % 2]}" + ("\n\n" if i % 2 == 1 else "")
            else:
                out += f"{role}:\n"
    elif style == "phoenix":
        out = prompt
        for role, text in turns:
            out += f"{role}: <s>{text}</s>" if text else f"{role}: <s>"
    elif style == "falcon_chat":
        out = prompt + sep if message else ""
        for role, text in turns:
            out += f"{role}: {text}{sep}" if text else f"{role}:"
    elif style == "metamath":
        out = prompt + sep if prompt else ""
        for i, (role, text) in enumerate(turns):
            start = ":\n" if i % 2 == 0 else ": " + sep2
            out += role + start + (text + (sep if i % 2 == 0 else "") if text else "")
    elif style == "yuan2":
        out = prompt + sep2 if message else ""
        out += "".join(text + "<n>" for _, text in turns if text)
        out = out.rstrip("<n>") + sep
    elif style == "gemma":
        out = "<bos>"
        for role, text in turns:
            out += f"<start_of_turn>{role}\n" + (text + sep if text else "")
    elif style == "cllm":
        out = prompt + seps[0]
        for i, (role, text) in enumerate(turns[-2:]):
            out += f"{role}: {text}{seps[i % 2]}" if text else f"{role}:"
    else:
        raise AssertionError(f"no oracle for style {style}")
    return out


def _fastchat_turns(record: dict[str, Any], turns: list[dict[str, str]], slot: bool) -> list:
    roles = record.get("roles", ["USER", "ASSISTANT"])
    names = {"user": roles[0], "assistant": roles[1]}
    examples = [(names[m["role"]], m["content"]) for m in record.get("examples", [])]
    listed = examples + [(names[m["role"]], m["content"]) for m in turns]
    return [*listed, (roles[1], None)] if slot else listed


BUILT = {t.name: t for t in fastchat_templates()}


@pytest.mark.parametrize("name", sorted(RECORDS))
@pytest.mark.parametrize("system", [SYSTEM, None], ids=["system", "default-system"])
def test_renders_exactly_as_fastchat(name: str, system: str | None) -> None:
    record, template = RECORDS[name], BUILT[name]
    messages = ([{"role": "system", "content": system}] if system else []) + TURNS
    prompt = render_prompt(template, messages[:-1])
    assert prompt == fastchat_prompt(record, system, _fastchat_turns(record, TURNS[:-1], True))
    full = render_conversation(template, messages).text if name not in NO_MASK else None
    if full is not None:
        assert full == fastchat_prompt(record, system, _fastchat_turns(record, TURNS, False))


def test_every_fastchat_name_is_registered_and_listed() -> None:
    registered = {t.name for t in list_templates()}
    assert set(RECORDS) <= registered
    assert len(RECORDS) >= 80
    for name in RECORDS:
        assert get_template(name).name == name
    # where the bare name follows the model's card, FastChat's own rendering is kept too
    for name in ("vicuna_v1.1", "alpaca", "llama-2", "mistral", "dolly_v2"):
        assert get_template(f"fastchat:{name}").jinja == BUILT[name].jinja
        assert get_template(name).jinja != BUILT[name].jinja


@pytest.mark.parametrize("name", sorted(t.name for t in list_templates()))
def test_every_template_masks_the_replies_and_nothing_else(name: str) -> None:
    template = get_template(name)
    messages = [{"role": "system", "content": SYSTEM}, *TURNS]
    if name in NO_MASK:
        with pytest.raises(TemplateError, match="loss mask cannot be derived"):
            render_conversation(template, messages)
        return
    rendered = render_conversation(template, messages)
    masked = [rendered.text[a:b] for a, b in rendered.assistant_spans]
    assert len(masked) == 2
    for reply, span in zip(("Hi. How can I help?", "Blue."), masked, strict=True):
        assert reply.strip() in span.replace("\r\n", "\n")
    for user in ("Hello there!", "Name a colour.", SYSTEM):
        assert not any(user in span for span in masked)
    prompt = render_prompt(template, messages[:-1])
    assert rendered.text.startswith(prompt)


def test_aliases_share_a_format_under_fastchats_names() -> None:
    for alias in ("catppt", "TinyLlama"):
        assert BUILT[alias].jinja == BUILT["zephyr"].jinja
    assert BUILT["ReaLM-7b-v1"].extra == BUILT["phoenix"].extra


def test_a_model_without_template_or_family_gets_the_choices() -> None:
    with pytest.raises(TemplateError) as info:
        resolve_template(None, tokenizer=None, family_default=None)
    message = str(info.value)
    assert "--conv-template" in message
    for name in ("vicuna_v1.1", "llama-2", "qwen-7b-chat", "Robin"):
        assert name in message


# The template FastChat used for each model of the MT-bench answer set (None: a hosted
# model, formatted by its provider); Palestra's registry must agree.
MT_BENCH_MODELS = {
    "alpaca-13b": "alpaca", "baize-v2-13b": "baize", "chatglm-6b": "chatglm",
    "claude-instant-v1": "claude", "claude-v1": "claude", "dolly-v2-12b": "dolly_v2",
    "falcon-40b-instruct": "falcon", "fastchat-t5-3b": "zero_shot", "gpt-3.5-turbo": None,
    "gpt-4": None, "gpt4all-13b-snoozy": "snoozy", "guanaco-33b": "zero_shot",
    "guanaco-65b": "zero_shot", "h2ogpt-oasst-open-llama-13b": "h2ogpt",
    "koala-13b": "koala_v1", "llama-13b": "one_shot", "mpt-30b-chat": "mpt-30b-chat",
    "mpt-30b-instruct": "mpt-30b-instruct", "mpt-7b-chat": "mpt-7b-chat",
    "nous-hermes-13b": "alpaca", "oasst-sft-4-pythia-12b": "oasst",
    "oasst-sft-7-llama-30b": "oasst_llama", "palm-2-chat-bison-001": None,
    "rwkv-4-raven-14b": "rwkv", "stablelm-tuned-alpha-7b": "stablelm", "tulu-30b": "tulu",
    "vicuna-13b-v1.3": "vicuna_v1.1", "vicuna-33b-v1.3": "vicuna_v1.1",
    "vicuna-7b-v1.3": "vicuna_v1.1", "wizardlm-13b": "vicuna_v1.1", "wizardlm-30b": "vicuna_v1.1",
}  # fmt: skip


@needs_shared_data
def test_mt_bench_models_resolve_to_their_familys_template() -> None:
    from palestra.plugins import model_registry

    assert SHARED_DATA is not None
    answers = SHARED_DATA / "mt_bench" / "model_answer"
    assert sorted(p.stem for p in answers.glob("*.jsonl")) == sorted(MT_BENCH_MODELS)
    registry = model_registry()
    for name, template in MT_BENCH_MODELS.items():
        family = registry.resolve(name)
        assert family is not None, name
        assert family.template == template, name
        if template is not None:
            get_template(template)  # registered
