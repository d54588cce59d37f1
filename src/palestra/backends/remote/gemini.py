"""`GeminiBackend`: Gemini models through Google's `google-genai` SDK, on the Gemini API or
on Vertex AI.

The conversation is translated to Gemini's shape: system messages become the
`system_instruction`; assistant turns are `model` turns; images are `inline_data` parts
(data: URLs) or `file_data` parts (other URLs); OpenAI-shaped tools become function
declarations (their JSON schemas passed as they are), `tool_choice` the function-calling
mode, assistant tool calls `function_call` parts and tool results `function_response`
parts; `response_format` becomes a JSON response with its schema. The `function_call`
parts of a reply come back as OpenAI tool calls.
"""

from __future__ import annotations

import base64
import json
import mimetypes
import os
from collections.abc import AsyncIterator
from typing import Any

from palestra.backends.remote.base import (
    RemoteBackend,
    conversation_tokens,
    estimate_tokens,
    provider_error,
)
from palestra.backends.remote.endpoints import RemoteEndpoint
from palestra.backends.remote.openai_compat import final_chunk
from palestra.core.errors import UnsupportedError
from palestra.core.images import split_data_url
from palestra.core.types import (
    RESPONSE_FORMATS,
    Conversation,
    GenerationChunk,
    Message,
    SamplingParams,
    Usage,
)


def _image_part(url: str) -> dict[str, Any]:
    split = split_data_url(url)
    if split is not None:
        media_type, data = split
        return {"inline_data": {"mime_type": media_type, "data": base64.b64decode(data)}}
    media_type = mimetypes.guess_type(url)[0] or "image/jpeg"
    return {"file_data": {"file_uri": url, "mime_type": media_type}}


def _call_names(messages: tuple[Message, ...]) -> dict[str, str]:
    """Tool call id -> function name (a Gemini function response names its function)."""
    return {
        str(call.get("id", "")): str((call.get("function") or {}).get("name", ""))
        for message in messages
        for call in message.tool_calls
    }


def gemini_contents(messages: tuple[Message, ...]) -> tuple[str, list[dict[str, Any]]]:
    """(system instruction, Gemini contents) for a conversation."""
    names = _call_names(messages)
    system = "\n\n".join(m.content for m in messages if m.role == "system")
    contents: list[dict[str, Any]] = []
    for message in messages:
        if message.role == "system":
            continue
        parts: list[dict[str, Any]]
        if message.role == "tool":
            name = names.get(message.tool_call_id or "", "")
            parts = [{"function_response": {"name": name, "response": {"result": message.content}}}]
            role = "user"
        else:
            role = "model" if message.role == "assistant" else "user"
            parts = [_image_part(url) for url in message.images]
            if message.content or not message.tool_calls:
                parts.append({"text": message.content})
            for call in message.tool_calls:
                function = call.get("function") or {}
                arguments = function.get("arguments") or "{}"
                try:
                    args = json.loads(arguments) if isinstance(arguments, str) else arguments
                except ValueError:
                    args = {}
                parts.append({"function_call": {"name": function.get("name", ""), "args": args}})
        if contents and contents[-1]["role"] == role:
            contents[-1]["parts"] += parts
        else:
            contents.append({"role": role, "parts": parts})
    return system, contents


def gemini_config(
    conversation: Conversation, sampling: SamplingParams, max_tokens: int, system: str
) -> dict[str, Any]:
    """Gemini's GenerateContentConfig (as a dict) for a request."""
    config: dict[str, Any] = {
        "temperature": sampling.temperature,
        "top_p": sampling.top_p,
        "max_output_tokens": max_tokens,
        "automatic_function_calling": {"disable": True},
    }
    if system:
        config["system_instruction"] = system
    if sampling.stop:
        config["stop_sequences"] = list(sampling.stop)
    if sampling.seed is not None:
        config["seed"] = sampling.seed
    if sampling.top_k > 0:
        config["top_k"] = sampling.top_k
    if conversation.tools:
        declarations = []
        for tool in conversation.tools:
            function = tool["function"]
            declaration = {"name": function["name"], "description": function.get("description", "")}
            if function.get("parameters"):
                declaration["parameters_json_schema"] = function["parameters"]
            declarations.append(declaration)
        config["tools"] = [{"function_declarations": declarations}]
        choice = conversation.tool_choice
        mode: dict[str, Any] = {"mode": "AUTO"}
        if choice == "none":
            mode = {"mode": "NONE"}
        elif choice == "required":
            mode = {"mode": "ANY"}
        elif isinstance(choice, dict):
            mode = {"mode": "ANY", "allowed_function_names": [choice["function"]["name"]]}
        config["tool_config"] = {"function_calling_config": mode}
    response_format = conversation.response_format or {}
    if response_format.get("type") in ("json_object", "json_schema"):
        config["response_mime_type"] = "application/json"
        schema = (response_format.get("json_schema") or {}).get("schema")
        if schema:
            config["response_json_schema"] = schema
    return config


class GeminiBackend(RemoteBackend):
    name = "gemini"
    response_formats = RESPONSE_FORMATS
    native_extras = frozenset({"top_k"})

    def __init__(self, endpoint: RemoteEndpoint, *, stream: bool = True, vertex: bool = False):
        super().__init__(endpoint)
        try:
            from google import genai
        except ImportError as exc:
            raise UnsupportedError(
                "gemini endpoints need Google's SDK: pip install 'palestra[gemini]'"
            ) from exc
        self.streams = endpoint.stream if endpoint.stream is not None else stream
        http: dict[str, Any] = {"timeout": int(endpoint.timeout * 1000)}  # milliseconds
        if endpoint.api_base:
            http["base_url"] = endpoint.api_base
        options: dict[str, Any] = {"http_options": http}
        if vertex:
            options["vertexai"] = True
            project = endpoint.project_id or os.environ.get("GOOGLE_CLOUD_PROJECT")
            if project:
                options["project"] = project
                options["location"] = endpoint.region or "us-central1"
            key = endpoint.key()
            if key != "none":
                options["api_key"] = key  # Vertex AI express mode
        else:
            options["api_key"] = endpoint.key()
        self.client = genai.Client(**options)

    async def stream(
        self, conversation: Conversation, sampling: SamplingParams
    ) -> AsyncIterator[GenerationChunk]:
        from google.genai import errors

        system, contents = gemini_contents(conversation.messages)
        config = gemini_config(conversation, sampling, self.max_tokens(sampling), system)
        arguments: dict[str, Any] = {
            "model": self.endpoint.provider_model,
            "contents": contents,
            "config": config,
        }
        finish: str | None = None
        usage: Usage | None = None
        produced: list[str] = []
        calls: list[Any] = []
        try:
            models = self.client.aio.models
            if self.streams:
                replies = await models.generate_content_stream(**arguments)
            else:
                replies = _once(await models.generate_content(**arguments))
            async for reply in replies:
                if reply.usage_metadata is not None and reply.usage_metadata.prompt_token_count:
                    metadata = reply.usage_metadata
                    usage = Usage(
                        metadata.prompt_token_count or 0, metadata.candidates_token_count or 0
                    )
                if not reply.candidates:
                    continue
                candidate = reply.candidates[0]
                finish = str(candidate.finish_reason or "") or finish
                for part in (candidate.content.parts if candidate.content else None) or ():
                    if part.function_call is not None:
                        calls.append(part.function_call)
                    elif part.text and not part.thought:
                        produced.append(part.text)
                        yield GenerationChunk(text=part.text)
        except errors.APIError as exc:
            raise provider_error(self.endpoint, exc.code, str(exc.message or exc)) from None
        except Exception as exc:
            if not _unreachable(exc):
                raise
            raise provider_error(self.endpoint, None, str(exc) or type(exc).__name__) from None
        if usage is None:
            usage = Usage(conversation_tokens(conversation), estimate_tokens("".join(produced)))
        made = tuple(
            {
                "id": call.id or f"call_{index}",
                "type": "function",
                "function": {"name": call.name, "arguments": json.dumps(call.args or {})},
            }
            for index, call in enumerate(calls)
        )
        yield final_chunk("length" if finish and "MAX_TOKENS" in finish else finish, usage, made)


async def _once(reply: Any) -> AsyncIterator[Any]:
    yield reply


def _unreachable(error: Exception) -> bool:
    """A failure to reach the service, from either HTTP client google-genai may use."""
    import asyncio

    import httpx

    if isinstance(error, (httpx.HTTPError, asyncio.TimeoutError, ConnectionError)):
        return True
    try:
        import aiohttp
    except ImportError:
        return False
    return isinstance(error, aiohttp.ClientError)
