"""`AnthropicBackend`: Claude models through the official `anthropic` SDK's Messages API
(system messages go in `system`; consecutive turns of one role are merged, as the API
requires alternating roles). OpenAI-shaped tools, tool choices, assistant tool calls and
tool results are translated to Anthropic's `tools`, `tool_choice`, `tool_use` and
`tool_result` blocks, and the `tool_use` blocks of a reply back into OpenAI tool calls;
`response_format` becomes `output_config.format` (a JSON schema; json_object: any object).
With `vertex`, Claude on Google Vertex AI (the SDK's Vertex client: `project_id` and
`region` from the endpoint or $GOOGLE_CLOUD_PROJECT / $CLOUD_ML_REGION, the key as an
access token)."""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator, Sequence
from typing import Any

from palestra.backends.remote.base import RemoteBackend, provider_error
from palestra.backends.remote.endpoints import RemoteEndpoint
from palestra.core.errors import UnsupportedError
from palestra.core.images import split_data_url
from palestra.core.types import (
    RESPONSE_FORMATS,
    Conversation,
    FinishReason,
    GenerationChunk,
    Message,
    SamplingParams,
    Usage,
    response_format_schema,
)


def _image_block(url: str) -> dict[str, Any]:
    split = split_data_url(url)
    if split is not None:
        media_type, data = split
        return {
            "type": "image",
            "source": {"type": "base64", "media_type": media_type, "data": data},
        }
    return {"type": "image", "source": {"type": "url", "url": url}}


def _blocks(message: Message) -> list[dict[str, Any]]:
    if message.role == "tool":
        return [
            {
                "type": "tool_result",
                "tool_use_id": message.tool_call_id or "",
                "content": message.content,
            }
        ]
    blocks = [_image_block(url) for url in message.images]
    if message.content or not message.tool_calls:
        blocks.append({"type": "text", "text": message.content})
    for call in message.tool_calls:
        function = call.get("function") or {}
        arguments = function.get("arguments") or "{}"
        try:
            parsed = json.loads(arguments) if isinstance(arguments, str) else arguments
        except ValueError:
            parsed = {}
        blocks.append(
            {"type": "tool_use", "id": call.get("id", ""), "name": function.get("name", ""),
             "input": parsed}
        )  # fmt: skip
    return blocks


def anthropic_tools(conversation: Conversation) -> dict[str, Any]:
    """`tools` and `tool_choice` in the Messages API's shape (nothing when none offered)."""
    if not conversation.tools:
        return {}
    tools = [
        {
            "name": function["name"],
            "description": function.get("description", ""),
            "input_schema": function.get("parameters") or {"type": "object"},
        }
        for function in (tool["function"] for tool in conversation.tools)
    ]
    choice = conversation.tool_choice
    if choice == "none":
        return {"tools": tools, "tool_choice": {"type": "none"}}
    if choice == "required":
        return {"tools": tools, "tool_choice": {"type": "any"}}
    if isinstance(choice, dict):
        name = (choice.get("function") or {}).get("name")
        return {"tools": tools, "tool_choice": {"type": "tool", "name": name}}
    return {"tools": tools}


def anthropic_messages(messages: Sequence[Message]) -> tuple[str, list[dict[str, Any]]]:
    """(system text, alternating user/assistant turns) in the Messages API's shape; turns
    with images or tools carry content blocks."""
    system = "\n\n".join(m.content for m in messages if m.role == "system")
    turns: list[dict[str, Any]] = []
    for message in messages:
        if message.role == "system":
            continue
        role = "assistant" if message.role == "assistant" else "user"
        blocks = _blocks(message)
        if turns and turns[-1]["role"] == role:
            turns[-1]["blocks"] += blocks
        else:
            turns.append({"role": role, "blocks": blocks})
    shaped = []
    for turn in turns:
        blocks = turn["blocks"]
        if all(b["type"] == "text" for b in blocks):  # plain text: one string, as usual
            content: Any = "\n\n".join(b["text"] for b in blocks)
        else:
            content = blocks
        shaped.append({"role": turn["role"], "content": content})
    return system, shaped


class AnthropicBackend(RemoteBackend):
    name = "anthropic"
    native_extras = frozenset({"top_k"})
    response_formats = RESPONSE_FORMATS  # as output_config.format (Claude's JSON outputs)

    def __init__(self, endpoint: RemoteEndpoint, *, vertex: bool = False):
        super().__init__(endpoint)
        try:
            from anthropic import AsyncAnthropic, AsyncAnthropicVertex
        except ImportError as exc:
            raise UnsupportedError(
                "anthropic endpoints need the anthropic SDK: pip install 'palestra[anthropic]'"
            ) from exc
        # RemoteBackend.generate retries, the same for every provider.
        options: dict[str, Any] = {"max_retries": 0, "timeout": endpoint.timeout}
        if endpoint.api_base:
            options["base_url"] = endpoint.api_base
        if vertex:
            options["region"] = endpoint.region or os.environ.get("CLOUD_ML_REGION", "us-east5")
            project = endpoint.project_id or os.environ.get("GOOGLE_CLOUD_PROJECT")
            if project:
                options["project_id"] = project
            self.client: Any = AsyncAnthropicVertex(access_token=endpoint.key(), **options)
        else:
            self.client = AsyncAnthropic(api_key=endpoint.key(), **options)

    async def stream(
        self, conversation: Conversation, sampling: SamplingParams
    ) -> AsyncIterator[GenerationChunk]:
        import anthropic

        system, turns = anthropic_messages(conversation.messages)
        arguments: dict[str, Any] = {
            "model": self.endpoint.provider_model,
            "max_tokens": self.max_tokens(sampling),
            "messages": turns,
            **anthropic_tools(conversation),
        }
        if system:
            arguments["system"] = system
        schema = response_format_schema(conversation.response_format)
        if schema is not None:
            output = {"type": "json_schema", "schema": json.loads(schema)}
            arguments["output_config"] = {"format": output}
        if sampling.stop:
            arguments["stop_sequences"] = list(sampling.stop)
        # Sampling knobs the typed signature no longer lists; sent only when not default.
        extra: dict[str, Any] = {}
        if sampling.temperature != 1.0:
            extra["temperature"] = min(sampling.temperature, 1.0)
        if sampling.top_p != 1.0:
            extra["top_p"] = sampling.top_p
        if sampling.top_k > 0:
            extra["top_k"] = sampling.top_k
        extra.update(self.endpoint.extra_body)
        if extra:
            arguments["extra_body"] = extra
        try:
            async with self.client.messages.stream(**arguments) as events:
                async for text in events.text_stream:
                    if text:
                        yield GenerationChunk(text=text)
                final = await events.get_final_message()
        except anthropic.APIStatusError as exc:
            raise provider_error(self.endpoint, exc.status_code, str(exc.message)) from None
        except anthropic.APIConnectionError as exc:
            raise provider_error(self.endpoint, None, str(exc)) from None
        uses: list[Any] = [b for b in final.content if getattr(b, "type", "") == "tool_use"]
        calls = tuple(
            {
                "id": use.id,
                "type": "function",
                "function": {"name": use.name, "arguments": json.dumps(use.input)},
            }
            for use in uses
        )
        reason: FinishReason = (
            "tool_calls" if calls else "length" if final.stop_reason == "max_tokens" else "stop"
        )
        yield GenerationChunk(
            text="",
            finish_reason=reason,
            usage=Usage(final.usage.input_tokens, final.usage.output_tokens),
            tool_calls=calls,
        )
