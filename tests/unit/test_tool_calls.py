"""Tool calls: the prompt side (tools reach the template, or a system description) and the
parsing side (every supported reply format back into OpenAI tool_calls)."""

from __future__ import annotations

import json

import pytest

from palestra.serve.openai.tool_calls import parse_tool_calls, validate_tools
from palestra.templates import get_template
from palestra.templates.spec import ChatTemplate
from palestra.templates.tools import forced_call_schema, normalise_tool_messages, with_tools

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string"}},
                "required": ["city"],
            },
        },
    },
    {"type": "function", "function": {"name": "add", "parameters": {"type": "object"}}},
]


def names_and_args(calls: list[dict]) -> list[tuple[str, dict]]:
    return [(c["function"]["name"], json.loads(c["function"]["arguments"])) for c in calls]


@pytest.mark.parametrize(
    "reply",
    [
        '<tool_call>{"name": "get_weather", "arguments": {"city": "Paris"}}</tool_call>',
        '<tool_call>\n{"name": "get_weather", '
        '"arguments": "{\\"city\\": \\"Paris\\"}"}\n</tool_call>',
        '{"name": "get_weather", "parameters": {"city": "Paris"}}',
        '[TOOL_CALLS] [{"name": "get_weather", "arguments": {"city": "Paris"}}]',
    ],
)
def test_formats(reply: str) -> None:
    content, calls = parse_tool_calls(reply, TOOLS)
    assert content is None
    assert names_and_args(calls) == [("get_weather", {"city": "Paris"})]
    assert calls[0]["id"].startswith("call_") and calls[0]["type"] == "function"


def test_several_calls_and_surrounding_text() -> None:
    reply = (
        'Let me check. <tool_call>{"name": "get_weather", "arguments": {"city": "Oslo"}}'
        '</tool_call><tool_call>{"name": "add", "arguments": {"a": 1}}</tool_call>'
    )
    content, calls = parse_tool_calls(reply, TOOLS)
    assert content == "Let me check."
    assert names_and_args(calls) == [("get_weather", {"city": "Oslo"}), ("add", {"a": 1})]


@pytest.mark.parametrize(
    "reply",
    [
        "The weather in Paris is sunny.",
        '{"name": "delete_everything", "arguments": {}}',  # not an offered tool
        "<tool_call>{not json}</tool_call>",
        '{"city": "Paris"}',
    ],
)
def test_non_calls_stay_text(reply: str) -> None:
    assert parse_tool_calls(reply, TOOLS) == (reply, [])


def test_validation() -> None:
    validate_tools(TOOLS, {"type": "function", "function": {"name": "add"}})
    with pytest.raises(ValueError, match="not among the tools"):
        validate_tools(TOOLS, {"type": "function", "function": {"name": "nope"}})
    with pytest.raises(ValueError, match="needs tools"):
        validate_tools(None, "required")
    with pytest.raises(ValueError, match="each tool"):
        validate_tools([{"type": "retrieval"}], "auto")


def test_forced_call_schema() -> None:
    named = json.loads(
        forced_call_schema(TOOLS, {"type": "function", "function": {"name": "get_weather"}}) or ""
    )
    assert named["properties"]["name"] == {"const": "get_weather"}
    assert named["properties"]["arguments"]["required"] == ["city"]
    required = json.loads(forced_call_schema(TOOLS, "required") or "")
    assert len(required["anyOf"]) == 2
    assert forced_call_schema(TOOLS, "auto") is None


def test_tools_reach_a_template_that_knows_them() -> None:
    template = ChatTemplate(
        "t",
        "{% for t in tools %}[{{ t.function.name }}]{% endfor %}"
        "{% for m in messages %}{{ m.content }}{% endfor %}",
    )
    messages, variables = with_tools(template, [{"role": "user", "content": "hi"}], TOOLS)
    assert variables == {"tools": TOOLS} and messages == [{"role": "user", "content": "hi"}]


def test_other_templates_get_a_system_description() -> None:
    messages, variables = with_tools(
        get_template("chatml"),
        [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi"}],
        TOOLS,
    )
    assert variables == {}
    assert messages[0]["content"].startswith("Be brief.\n\nYou can call these tools.")
    assert '"name": "get_weather"' in messages[0]["content"]
    assert "<tool_call>" in messages[0]["content"]


def test_tool_call_arguments_become_objects_for_templates() -> None:
    history = [
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "add", "arguments": '{"a": 1}'},
                }
            ],
        }
    ]
    assert normalise_tool_messages(history)[0]["tool_calls"][0]["function"]["arguments"] == {"a": 1}
