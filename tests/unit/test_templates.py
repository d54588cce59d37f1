"""Every named template renders a fixed two-turn conversation to its family's official
format, and the loss mask covers exactly the assistant replies with their end markers."""

from __future__ import annotations

import pytest

from palestra.core.errors import TemplateError
from palestra.templates import get_template, list_templates, render_conversation, render_prompt
from palestra.templates.resolve import resolve_template, template_from_tokenizer
from palestra.templates.spec import ChatTemplate

CONVERSATION = [
    {"role": "user", "content": "Hello!"},
    {"role": "assistant", "content": "Hi there."},
    {"role": "user", "content": "How are you?"},
    {"role": "assistant", "content": "I am fine."},
]
VICUNA_SYSTEM = (
    "A chat between a curious user and an artificial intelligence assistant. "
    "The assistant gives helpful, detailed, and polite answers to the user's questions."
)
HUMAN_SYSTEM = (
    "A chat between a curious human and an artificial intelligence assistant. "
    "The assistant gives helpful, detailed, and polite answers to the human's questions."
)
INSTRUCTION_SYSTEM = (
    "Below is an instruction that describes a task. Write a response that "
    "appropriately completes the request."
)

# name -> (full rendering, the masked replies). Sources are in each template's data file.
OFFICIAL: dict[str, tuple[str, list[str]]] = {
    # lm-sys/FastChat docs/vicuna_weights_version.md: "USER: ... ASSISTANT: ...</s>"
    "vicuna_v1.1": (
        f"<s>{VICUNA_SYSTEM} USER: Hello! ASSISTANT: Hi there.</s>USER: How are you? "
        "ASSISTANT: I am fine.</s>",
        [" Hi there.</s>", " I am fine.</s>"],
    ),
    # huggingface.co/blog/llama2: <s>[INST] {user} [/INST] {answer} </s><s>[INST] ...
    "llama-2": (
        "<s>[INST] Hello! [/INST] Hi there. </s><s>[INST] How are you? [/INST] I am fine. </s>",
        [" Hi there. </s>", " I am fine. </s>"],
    ),
    # llama.com model card, Meta Llama 3: header ids and <|eot_id|>
    "llama-3": (
        "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHello!<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\nHi there.<|eot_id|>"
        "<|start_header_id|>user<|end_header_id|>\n\nHow are you?<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\nI am fine.<|eot_id|>",
        ["Hi there.<|eot_id|>", "I am fine.<|eot_id|>"],
    ),
    # openai-python chatml.md
    "chatml": (
        "<|im_start|>user\nHello!<|im_end|>\n<|im_start|>assistant\nHi there.<|im_end|>\n"
        "<|im_start|>user\nHow are you?<|im_end|>\n<|im_start|>assistant\nI am fine.<|im_end|>\n",
        ["Hi there.<|im_end|>", "I am fine.<|im_end|>"],
    ),
    # Mistral-7B-Instruct-v0.1 card: "<s>[INST] ... [/INST]answer</s>[INST] ... [/INST]"
    "mistral": (
        "<s>[INST] Hello! [/INST]Hi there.</s>[INST] How are you? [/INST]I am fine.</s>",
        ["Hi there.</s>", "I am fine.</s>"],
    ),
    # tatsu-lab/stanford_alpaca prompt_no_input, target = output + eos
    "alpaca": (
        f"<s>{INSTRUCTION_SYSTEM}\n\n### Instruction:\nHello!\n\n### Response:Hi there.</s>\n\n"
        "### Instruction:\nHow are you?\n\n### Response:I am fine.</s>\n\n",
        ["Hi there.</s>", "I am fine.</s>"],
    ),
    # HuggingFaceH4/zephyr-7b-beta card
    "zephyr": (
        "<|user|>\nHello!</s>\n<|assistant|>\nHi there.</s>\n<|user|>\nHow are you?</s>\n"
        "<|assistant|>\nI am fine.</s>\n",
        ["Hi there.</s>", "I am fine.</s>"],
    ),
    # ai.google.dev/gemma/docs/core/prompt-structure
    "gemma": (
        "<bos><start_of_turn>user\nHello!<end_of_turn>\n<start_of_turn>model\nHi there."
        "<end_of_turn>\n<start_of_turn>user\nHow are you?<end_of_turn>\n<start_of_turn>model\n"
        "I am fine.<end_of_turn>\n",
        ["Hi there.<end_of_turn>", "I am fine.<end_of_turn>"],
    ),
    # microsoft/Phi-3-mini-4k-instruct card, Chat Format
    "phi-3": (
        "<|user|>\nHello!<|end|>\n<|assistant|>\nHi there.<|end|>\n<|user|>\nHow are you?<|end|>\n"
        "<|assistant|>\nI am fine.<|end|>\n",
        ["Hi there.<|end|>", "I am fine.<|end|>"],
    ),
    # deepseek-ai/deepseek-llm-7b-chat card
    "deepseek-chat": (
        "<｜begin▁of▁sentence｜>User: Hello!\n\nAssistant: Hi there.<｜end▁of▁sentence｜>"
        "User: How are you?\n\nAssistant: I am fine.<｜end▁of▁sentence｜>",
        [" Hi there.<｜end▁of▁sentence｜>", " I am fine.<｜end▁of▁sentence｜>"],
    ),
    # tiiuae/falcon-180B-chat card: "User: ...\nFalcon: ..."; "\nUser:" ends a reply
    "falcon-chat": (
        "User: Hello!\nFalcon: Hi there.\nUser: How are you?\nFalcon: I am fine.\n",
        [" Hi there.\nUser:", " I am fine.\n"],
    ),
    # THUDM/ChatGLM3 PROMPT_en.md; the reply ends when the model writes <|user|>
    "chatglm3": (
        "[gMASK]sop<|user|>\n Hello!<|assistant|>\n Hi there.<|user|>\n How are you?"
        "<|assistant|>\n I am fine.",
        ["\n Hi there.<|user|>", "\n I am fine."],
    ),
    # openchat/openchat_3.5 card
    "openchat_3.5": (
        "<s>GPT4 Correct User: Hello!<|end_of_turn|>GPT4 Correct Assistant: Hi there."
        "<|end_of_turn|>GPT4 Correct User: How are you?<|end_of_turn|>GPT4 Correct Assistant: "
        "I am fine.<|end_of_turn|>",
        [" Hi there.<|end_of_turn|>", " I am fine.<|end_of_turn|>"],
    ),
    # allenai/tulu-2-dpo-7b card, Input Format (eos after each reply, open-instruct)
    "tulu": (
        "<|user|>\nHello!\n<|assistant|>\nHi there.</s>\n<|user|>\nHow are you?\n<|assistant|>\n"
        "I am fine.</s>\n",
        ["Hi there.</s>", "I am fine.</s>"],
    ),
    # young-geng/EasyLM docs/koala.md
    "koala_v1": (
        "<s>BEGINNING OF CONVERSATION: USER: Hello! GPT: Hi there.</s>USER: How are you? GPT: "
        "I am fine.</s>",
        [" Hi there.</s>", " I am fine.</s>"],
    ),
    # databrickslabs/dolly training/consts.py, PROMPT_NO_INPUT_FORMAT + "### End"
    "dolly_v2": (
        f"{INSTRUCTION_SYSTEM}\n\n### Instruction:\nHello!\n\n### Response:\nHi there.\n\n"
        "### End\n\n### Instruction:\nHow are you?\n\n### Response:\nI am fine.\n\n### End\n\n",
        ["Hi there.\n\n### End", "I am fine.\n\n### End"],
    ),
    # OpenAssistant/oasst-sft-4-pythia-12b card
    "oasst": (
        "<|prompter|>Hello!<|endoftext|><|assistant|>Hi there.<|endoftext|><|prompter|>"
        "How are you?<|endoftext|><|assistant|>I am fine.<|endoftext|>",
        ["Hi there.<|endoftext|>", "I am fine.<|endoftext|>"],
    ),
    # lm-sys/FastChat conversation.py zero_shot: "\n### " separators
    "zero_shot": (
        f"{HUMAN_SYSTEM}\n### Human: Hello!\n### Assistant: Hi there.\n### Human: How are you?\n"
        "### Assistant: I am fine.\n### ",
        [" Hi there.\n###", " I am fine.\n###"],
    ),
    # lm-sys/FastChat conversation.py raw: messages concatenated
    "raw": ("Hello!Hi there.How are you?I am fine.", ["Hi there.", "I am fine."]),
}
REQUIRED = {
    "vicuna_v1.1",
    "llama-2",
    "llama-3",
    "chatml",
    "mistral",
    "alpaca",
    "zephyr",
    "gemma",
    "phi-3",
    "deepseek-chat",
    "falcon",
    "chatglm3",
    "openchat_3.5",
    "tulu",
    "koala_v1",
    "dolly_v2",
    "oasst",
    "one_shot",
    "zero_shot",
    "raw",
}


def test_every_required_template_is_shipped() -> None:
    assert {t.name for t in list_templates()} >= REQUIRED


@pytest.mark.parametrize("name", sorted(OFFICIAL))
def test_official_format_and_mask(name: str) -> None:
    expected_text, expected_replies = OFFICIAL[name]
    rendered = render_conversation(get_template(name), CONVERSATION)
    assert rendered.text == expected_text
    assert [rendered.text[a:b] for a, b in rendered.assistant_spans] == expected_replies


def test_one_shot_carries_its_example_dialogue() -> None:
    template = get_template("one_shot")
    rendered = render_conversation(template, CONVERSATION)
    assert rendered.text.startswith(
        f"{HUMAN_SYSTEM}\n### Human: Got any creative ideas for a 10 year old’s birthday?\n"
        "### Assistant: Of course! Here are some creative ideas"
    )
    assert rendered.text.endswith(
        "### Human: Hello!\n### Assistant: Hi there.\n### Human: "
        "How are you?\n### Assistant: I am fine.\n### "
    )
    # the example dialogue is prompt, not training signal
    assert [rendered.text[a:b] for a, b in rendered.assistant_spans] == [
        " Hi there.\n###",
        " I am fine.\n###",
    ]


@pytest.mark.parametrize("name", sorted(REQUIRED))
def test_generation_prompt_is_the_prefix_of_the_reply(name: str) -> None:
    template = get_template(name)
    prompt = render_prompt(template, CONVERSATION[:3])
    full = render_conversation(template, CONVERSATION).text
    assert full.startswith(prompt)
    assert full[len(prompt) :].lstrip().startswith("I am fine.")


@pytest.mark.parametrize("name", sorted(REQUIRED))
def test_token_mask_matches_replies_exactly(name: str, bundled_tokenizer: object) -> None:
    """With a real tokenizer, the masked tokens decode to exactly the assistant replies."""
    template = get_template(name)
    rendered = render_conversation(template, CONVERSATION, bundled_tokenizer)
    spans = [rendered.text[a:b] for a, b in rendered.assistant_spans]
    assert len(rendered.input_ids) == len(rendered.loss_mask)
    assert "".join(rendered.masked_text(bundled_tokenizer)) == "".join(spans)
    assert bundled_tokenizer.decode(rendered.input_ids) == rendered.text  # type: ignore[attr-defined]


def test_system_message_is_rendered() -> None:
    messages = [{"role": "system", "content": "Be brief."}, *CONVERSATION[:1]]
    assert "<<SYS>>\nBe brief.\n<</SYS>>\n\nHello!" in render_prompt(
        get_template("llama-2"), messages
    )
    assert render_prompt(get_template("vicuna_v1.1"), messages).startswith("<s>Be brief. USER:")
    assert "[INST] Be brief.\n\nHello! [/INST]" in render_prompt(get_template("mistral"), messages)


def test_unknown_template_names_the_known_ones() -> None:
    with pytest.raises(TemplateError, match=r"known templates: .*chatml"):
        get_template("no-such-template")


def test_template_from_a_jinja_file(tmp_path: object) -> None:
    from pathlib import Path

    file = Path(str(tmp_path)) / "mine.jinja"
    file.write_text(
        "{% for m in messages %}[{{ m['role'] }}]{{ m['content'] }}{% endfor %}"
        "{% if add_generation_prompt %}[assistant]{% endif %}"
    )
    template = get_template(str(file))
    assert render_prompt(template, CONVERSATION[:1]) == "[user]Hello![assistant]"


def test_template_that_depends_on_the_future_is_refused() -> None:
    # renders the reply differently once another turn follows: no consistent mask exists
    bad = ChatTemplate(
        "bad",
        "{% for m in messages %}{% if loop.last %}LAST{% endif %}{{ m['content'] }}{% endfor %}",
    )
    with pytest.raises(TemplateError, match="differently"):
        render_conversation(bad, CONVERSATION)


def test_resolution_order() -> None:
    class Tok:
        chat_template = "{% for m in messages %}{{ m['content'] }}{% endfor %}"
        bos_token = "<s>"
        eos_token = "</s>"

    assert resolve_template("chatml", Tok(), "llama-2").name == "chatml"  # explicit first
    assert resolve_template(None, Tok(), "llama-2").name == "tokenizer"  # then the tokenizer's
    Tok.chat_template = None  # type: ignore[assignment]
    assert template_from_tokenizer(Tok()) is None
    assert resolve_template(None, Tok(), "llama-2").name == "llama-2"  # then the family's
    with pytest.raises(TemplateError, match="--conv-template"):
        resolve_template(None, Tok(), None)


def test_raise_exception_in_template_is_a_template_error() -> None:
    with pytest.raises(TemplateError, match="alternate"):
        render_prompt(get_template("llama-2"), [CONVERSATION[0], CONVERSATION[0]])
