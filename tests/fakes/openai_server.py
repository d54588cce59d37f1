"""A scripted OpenAI-compatible chat model (a hosted provider's stand-in), streamed like
the real API. By the requested model id:

- `scripted-slow`: 40 numbered words, one every `slow_delay` s (0.25: to stop mid-answer);
- `scripted-vision`: "I see N image(s)." for messages with `image_url` parts;
- with `tools` (and tool_choice not "none") after a user turn: a call of the first tool
  (or the named one) with `{"text": <last user text>}`, streamed as OpenAI streams calls
  (id and name first, the arguments in pieces), finish_reason "tool_calls";
- after a `tool` turn: "The tool said: <its content>";
- anything else: "Scripted <model> heard: <last user text>".

As strict as OpenAI about tools: a tool_choice without tools, a malformed tool, or a tool
message answering no earlier call id is a 400 in OpenAI's error envelope.

As strict as OpenAI's reasoning models for a model id starting `o1` / `o3`: `temperature`,
`top_p` and `max_tokens` are a 400 naming the parameter, and so is a `system` message (o1-mini
refused them; `developer` is the reasoning models' role); `o1-nostream` also refuses
`stream: true`, as o1 did at launch.

Azure OpenAI's deployment route: `POST /openai/deployments/{deployment}/chat/completions`
answers only with an `api-version` query and the `api-key` header (`AZURE_KEY`); the
deployment is the model. `flaky-N` fails N requests with 503 and then answers;
`dead` always answers 503. Headers of each request are kept in `app.state.headers`.

`GET /v1/models` lists `app.state.models` and counts calls in `app.state.listings`; every
chat request body is kept in `app.state.bodies`.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse


def _tool_problem(body: dict[str, Any]) -> str | None:
    """What OpenAI would refuse about the request's tools, or None."""
    tools = body.get("tools")
    if body.get("tool_choice") is not None and not tools:
        return "'tool_choice' is only allowed when 'tools' are specified."
    for tool in tools or []:
        if tool.get("type") != "function" or not (tool.get("function") or {}).get("name"):
            return "Invalid 'tools': each needs type 'function' and a function name."
    call_ids: set[str] = set()
    for message in body["messages"]:
        for call in message.get("tool_calls") or []:
            call_ids.add(call.get("id"))
        if message["role"] == "tool" and message.get("tool_call_id") not in call_ids:
            return "Invalid 'messages': a 'tool' message must answer a preceding tool call."
    return None


AZURE_KEY = "azure-secret-key-123"
REASONING_REFUSED = ("temperature", "top_p", "max_tokens")


def _error(status: int, message: str, param: str | None = None) -> JSONResponse:
    error = {"message": message, "type": "invalid_request_error", "param": param, "code": None}
    return JSONResponse({"error": error}, status_code=status)


def _reasoning_problem(body: dict[str, Any]) -> JSONResponse | None:
    """What OpenAI's reasoning models refuse, or None."""
    for name in REASONING_REFUSED:
        if name in body:
            return _error(
                400, f"Unsupported parameter: '{name}' is not supported with this model.", name
            )
    for index, message in enumerate(body["messages"]):
        if message["role"] == "system":
            return _error(
                400, f"Unsupported value: 'messages[{index}].role' does not support 'system' "
                "with this model.", f"messages[{index}].role",
            )  # fmt: skip
    if body["model"] == "o1-nostream" and body.get("stream"):
        return _error(
            400, "Unsupported value: 'stream' does not support true with this model.", "stream"
        )
    return None


def _text_and_images(content: Any) -> tuple[str, int]:
    if isinstance(content, str):
        return content, 0
    text = " ".join(p.get("text", "") for p in content if p.get("type") == "text")
    return text, sum(1 for p in content if p.get("type") == "image_url")


def build_openai_app(slow_delay: float = 0.25) -> FastAPI:
    app = FastAPI()
    app.state.bodies = []
    app.state.headers = []
    app.state.failures = {}  # model -> failed requests so far
    app.state.models = ["scripted", "scripted-slow", "scripted-vision"]
    app.state.listings = 0

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/v1/models")
    async def models() -> dict[str, Any]:
        app.state.listings += 1
        return {"object": "list", "data": [{"id": m, "object": "model"} for m in app.state.models]}

    @app.post("/openai/deployments/{deployment}/chat/completions")
    async def azure_chat(deployment: str, request: Request) -> Response:
        if not request.query_params.get("api-version"):
            return _error(404, "Resource not found")  # Azure without api-version
        if request.headers.get("api-key") != AZURE_KEY:
            error = {"code": "401", "message": "Access denied due to invalid subscription key."}
            return JSONResponse({"error": error}, status_code=401)
        body = await request.json()
        return await answer({**body, "model": deployment}, request)

    @app.post("/v1/chat/completions")
    async def chat(request: Request) -> Response:
        return await answer(await request.json(), request)

    async def answer(body: dict[str, Any], request: Request) -> Response:
        app.state.bodies.append(body)
        app.state.headers.append(dict(request.headers))
        problem = _tool_problem(body)
        if problem:
            return _error(400, problem)
        model = body["model"]
        if model.startswith(("o1", "o3")):
            refused = _reasoning_problem(body)
            if refused is not None:
                return refused
        if model == "dead" or model.startswith("flaky-"):
            failed = app.state.failures.get(model, 0)
            if model == "dead" or failed < int(model.split("-")[1]):
                app.state.failures[model] = failed + 1
                return _error(503, "The server is overloaded; try again later.")
        if not body.get("stream"):
            return _whole_reply(model, body)
        last = body["messages"][-1]
        text, images = _text_and_images(last["content"] or "")
        delay = 0.0
        tools, choice = body.get("tools") or [], body.get("tool_choice")
        if tools and choice != "none" and last["role"] == "user":
            named = (
                (choice or {}).get("function", {}).get("name") if isinstance(choice, dict) else None
            )
            return StreamingResponse(
                _tool_call_events(model, named or tools[0]["function"]["name"], text),
                media_type="text/event-stream",
            )
        if last["role"] == "tool":
            words = ["The", "tool", "said:", text]
        elif model == "scripted-slow":
            words, delay = [f"word{i}" for i in range(1, 41)], slow_delay
        elif model == "scripted-vision":
            words = f"I see {images} image(s).".split()
        else:  # the user's text comes back verbatim (newlines, markdown, HTML)
            words = _words(model, text)
        base = {"id": "c1", "object": "chat.completion.chunk", "created": int(time.time()),
                "model": model}  # fmt: skip

        async def events() -> Any:
            for i, word in enumerate(words):
                if delay:
                    await asyncio.sleep(delay)
                delta = {"content": word if i == 0 else " " + word}
                yield f"data: {json.dumps({**base, 'choices': [{'index': 0, 'delta': delta}]})}\n\n"
            done = {"index": 0, "delta": {}, "finish_reason": "stop"}
            yield f"data: {json.dumps({**base, 'choices': [done]})}\n\n"
            usage = {"prompt_tokens": len(text.split()), "completion_tokens": len(words)}
            usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
            yield f"data: {json.dumps({**base, 'choices': [], 'usage': usage})}\n\n"
            yield "data: [DONE]\n\n"

        return StreamingResponse(events(), media_type="text/event-stream")

    return app


async def _tool_call_events(model: str, name: str, text: str) -> Any:
    base = {"id": "c2", "object": "chat.completion.chunk", "created": int(time.time()),
            "model": model}  # fmt: skip
    arguments = json.dumps({"text": text})
    head = {"index": 0, "id": "call_abc123", "type": "function",
            "function": {"name": name, "arguments": ""}}  # fmt: skip
    deltas = [{"role": "assistant", "content": None, "tool_calls": [head]}]
    for start in range(0, len(arguments), 5):  # the arguments arrive in pieces
        piece = {"index": 0, "function": {"arguments": arguments[start : start + 5]}}
        deltas.append({"tool_calls": [piece]})
    for delta in deltas:
        yield f"data: {json.dumps({**base, 'choices': [{'index': 0, 'delta': delta}]})}\n\n"
    done = {"index": 0, "delta": {}, "finish_reason": "tool_calls"}
    yield f"data: {json.dumps({**base, 'choices': [done]})}\n\n"
    usage = {"prompt_tokens": 12, "completion_tokens": 9, "total_tokens": 21}
    yield f"data: {json.dumps({**base, 'choices': [], 'usage': usage})}\n\n"
    yield "data: [DONE]\n\n"


def _words(model: str, text: str) -> list[str]:
    return ["Scripted", model, "heard:", text]


def _whole_reply(model: str, body: dict[str, Any]) -> JSONResponse:
    """A non-streamed chat completion (text only)."""
    text, _ = _text_and_images(body["messages"][-1]["content"] or "")
    words = _words(model, text)
    message = {"role": "assistant", "content": " ".join(words)}
    usage = {"prompt_tokens": len(text.split()), "completion_tokens": len(words)}
    return JSONResponse(
        {
            "id": "c3", "object": "chat.completion", "created": int(time.time()), "model": model,
            "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
            "usage": {**usage, "total_tokens": sum(usage.values())},
        }
    )  # fmt: skip
