"""Tools in prompts: templates that know tools get them as the `tools` variable (Hugging
Face convention); for templates that do not, the tools are described in a system message
that asks for `<tool_call>{"name": ..., "arguments": {...}}</tool_call>` replies (the
Hermes / Qwen convention, which `serve.openai.tool_calls` parses back)."""

from __future__ import annotations

import contextlib
import json
from typing import Any

from palestra.templates.spec import ChatTemplate


def template_supports_tools(template: ChatTemplate) -> bool:
    return "tools" in template.jinja


def describe_tools(tools: list[dict[str, Any]]) -> str:
    specs = "\n".join(json.dumps(tool.get("function", tool), ensure_ascii=False) for tool in tools)
    return (
        "You can call these tools. To call one, reply with only\n"
        '<tool_call>{"name": <tool name>, "arguments": <arguments as a JSON object>}'
        "</tool_call>\nTools:\n" + specs
    )


def with_tools(
    template: ChatTemplate, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The messages and template variables that put `tools` in front of the model."""
    if not tools:
        return messages, {}
    if template_supports_tools(template):
        return messages, {"tools": tools}
    description = describe_tools(tools)
    if messages and messages[0].get("role") == "system":
        first = dict(messages[0])
        first["content"] = f"{first.get('content') or ''}\n\n{description}".strip()
        return [first, *messages[1:]], {}
    return [{"role": "system", "content": description}, *messages], {}


def normalise_tool_messages(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """OpenAI sends tool-call arguments as JSON text; chat templates expect objects."""
    out = []
    for message in messages:
        calls = message.get("tool_calls")
        if calls:
            message = dict(message)
            message["tool_calls"] = [_with_object_arguments(call) for call in calls]
        out.append(message)
    return out


def _with_object_arguments(call: dict[str, Any]) -> dict[str, Any]:
    function = dict(call.get("function") or {})
    arguments = function.get("arguments")
    if isinstance(arguments, str):
        with contextlib.suppress(ValueError):
            function["arguments"] = json.loads(arguments)
    return {**call, "function": function}


def forced_call_schema(tools: list[dict[str, Any]], tool_choice: Any) -> str | None:
    """For `required` or a named function: the JSON schema of the call to force."""

    def call_schema(tool: dict[str, Any]) -> dict[str, Any]:
        function = tool["function"]
        return {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "name": {"const": function["name"]},
                "arguments": function.get("parameters") or {"type": "object"},
            },
            "required": ["name", "arguments"],
        }

    if tool_choice == "required":
        return json.dumps({"anyOf": [call_schema(tool) for tool in tools]})
    if isinstance(tool_choice, dict):
        name = tool_choice["function"]["name"]
        return json.dumps(call_schema(next(t for t in tools if t["function"]["name"] == name)))
    return None
