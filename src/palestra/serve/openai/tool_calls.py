"""Tool calls for the chat endpoint: validating `tools` / `tool_choice`, and parsing a
local model's reply back into OpenAI `tool_calls` (the schema that forces a call lives
with the other tool helpers in `templates.tools`).

Parsed formats: `<tool_call>{json}</tool_call>` blocks (Hermes, Qwen), Mistral's
`[TOOL_CALLS] [...]`, and a reply that is a bare JSON call or list of calls (Llama 3.1,
and the forced-call grammar). A call naming an unknown tool is left as text.
"""

from __future__ import annotations

import json
import re
import uuid
from typing import Any

TOOL_CALL_BLOCK = re.compile(r"<tool_call>\s*(.*?)\s*</tool_call>", re.S)


def tool_names(tools: list[dict[str, Any]]) -> list[str]:
    return [str((tool.get("function") or {}).get("name")) for tool in tools]


def validate_tools(tools: list[dict[str, Any]] | None, tool_choice: Any) -> None:
    """Raise ValueError (a 400) for malformed tools or a choice naming no tool."""
    for tool in tools or []:
        function = tool.get("function")
        if (
            tool.get("type") != "function"
            or not isinstance(function, dict)
            or not function.get("name")
        ):
            raise ValueError("each tool must be {'type': 'function', 'function': {'name': ...}}")
    if tool_choice is None or tool_choice in ("none", "auto"):
        return
    if not tools:
        raise ValueError("tool_choice needs tools")
    if tool_choice == "required":
        return
    if isinstance(tool_choice, dict):
        name = (tool_choice.get("function") or {}).get("name")
        if name not in tool_names(tools):
            raise ValueError(
                f"tool_choice names {name!r}, which is not among the tools: "
                f"{', '.join(tool_names(tools))}"
            )
        return
    raise ValueError(
        "tool_choice must be 'none', 'auto', 'required' or "
        "{'type': 'function', 'function': {'name': ...}}"
    )


def _as_call(data: Any, names: list[str]) -> dict[str, Any] | None:
    if not isinstance(data, dict) or data.get("name") not in names:
        return None
    arguments = data.get("arguments", data.get("parameters", {}))
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments)
        except ValueError:
            return None
    return {
        "id": f"call_{uuid.uuid4().hex[:24]}",
        "type": "function",
        "function": {"name": data["name"], "arguments": json.dumps(arguments, ensure_ascii=False)},
    }


def _json_calls(text: str, names: list[str]) -> list[dict[str, Any]] | None:
    try:
        data = json.loads(text)
    except ValueError:
        return None
    items = data if isinstance(data, list) else [data]
    calls = [_as_call(item, names) for item in items]
    if not calls or any(call is None for call in calls):
        return None
    return [call for call in calls if call is not None]


def parse_tool_calls(
    text: str, tools: list[dict[str, Any]]
) -> tuple[str | None, list[dict[str, Any]]]:
    """(remaining content or None, tool calls) for a finished reply."""
    names = tool_names(tools)
    blocks = TOOL_CALL_BLOCK.findall(text)
    if blocks:
        calls = [call for block in blocks for call in (_json_calls(block, names) or [])]
        if calls:
            content = TOOL_CALL_BLOCK.sub("", text).strip()
            return content or None, calls
    stripped = text.strip()
    if stripped.startswith("[TOOL_CALLS]"):
        stripped = stripped[len("[TOOL_CALLS]") :].strip()
    bare = _json_calls(stripped, names) if stripped[:1] in "[{" else None
    if bare:
        return None, bare
    return text, []
