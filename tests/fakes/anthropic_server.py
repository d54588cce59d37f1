"""A stand-in for Anthropic's Messages API (`POST /v1/messages`, streamed as server-sent
events like the real one): replies "Claude heard: <last user message>" (a tool result's
content counts as the message), or, when the request offers `tools` and the last turn is
the user's text, a `tool_use` block for the first tool (or the one `tool_choice` names)
with `{"text": <message>}` streamed as `input_json_delta` pieces. It checks the key
(`x-api-key` or a bearer token, as SDK versions differ), refuses a `tool_result` that
answers no earlier `tool_use` (400, as Anthropic does), and keeps every request body.

Claude on Vertex AI: `POST /v1/projects/{p}/locations/{r}/publishers/anthropic/models/
{model}:streamRawPredict` wants a bearer access token (`VERTEX_TOKEN`), `anthropic_version`
in the body and no `model` there (the path names it), as Vertex does."""

from __future__ import annotations

import json
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, StreamingResponse

API_KEY = "sk-ant-test"
VERTEX_TOKEN = "ya29.vertex-access-token"


def build_anthropic_app() -> FastAPI:
    app = FastAPI()
    app.state.bodies = []
    app.state.vertex_paths = []

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.post(
        "/v1/projects/{project}/locations/{region}/publishers/anthropic/models/{call}",
        response_model=None,
    )
    async def vertex(project: str, region: str, call: str, request: Request) -> Any:
        if request.headers.get("authorization") != f"Bearer {VERTEX_TOKEN}":
            return JSONResponse({"error": {"code": 401, "status": "UNAUTHENTICATED"}}, 401)
        body = await request.json()
        model, _, method = call.partition(":")
        if "model" in body or not body.get("anthropic_version") or method != "streamRawPredict":
            return JSONResponse({"error": {"code": 400, "status": "INVALID_ARGUMENT"}}, 400)
        app.state.vertex_paths.append((project, region))
        return answer({**body, "model": model})

    @app.post("/v1/messages", response_model=None)
    async def messages(request: Request) -> Any:
        bearer = request.headers.get("authorization", "").removeprefix("Bearer ")
        if API_KEY not in (request.headers.get("x-api-key"), bearer):
            error = {"type": "authentication_error", "message": "invalid x-api-key"}
            return JSONResponse({"type": "error", "error": error}, status_code=401)
        return answer(await request.json())

    def answer(body: dict[str, Any]) -> Any:
        app.state.bodies.append(body)
        if body["model"] == "missing-model":
            error = {"type": "not_found_error", "message": f"model: {body['model']}"}
            return JSONResponse({"type": "error", "error": error}, status_code=404)
        problem = _tool_result_problem(body["messages"])
        if problem:
            error = {"type": "invalid_request_error", "message": problem}
            return JSONResponse({"type": "error", "error": error}, status_code=400)
        last = body["messages"][-1]
        heard = _text(last["content"])
        text = "Claude heard: " + heard
        words = text.split(" ")
        limit = body["max_tokens"]
        stop_reason = "max_tokens" if len(words) > limit else "end_turn"
        words = words[:limit]
        usage_in = sum(len(_text(m["content"]).split()) for m in body["messages"])

        def event(name: str, data: dict[str, Any]) -> str:
            return f"event: {name}\ndata: {json.dumps({'type': name, **data})}\n\n"

        tools = body.get("tools") or []
        if (
            tools
            and isinstance(last["content"], str)
            and body.get("tool_choice", {}).get("type") != "none"
        ):
            name = body.get("tool_choice", {}).get("name") or tools[0]["name"]
            return StreamingResponse(
                _tool_use_stream(event, body["model"], name, heard, usage_in),
                media_type="text/event-stream",
            )

        def stream() -> Any:
            message = {
                "id": "msg_1", "type": "message", "role": "assistant", "content": [],
                "model": body["model"], "stop_reason": None, "stop_sequence": None,
                "usage": {"input_tokens": usage_in, "output_tokens": 0},
            }  # fmt: skip
            yield event("message_start", {"message": message})
            block = {"type": "text", "text": ""}
            yield event("content_block_start", {"index": 0, "content_block": block})
            for i, word in enumerate(words):
                delta = {"type": "text_delta", "text": word if i == 0 else " " + word}
                yield event("content_block_delta", {"index": 0, "delta": delta})
            yield event("content_block_stop", {"index": 0})
            yield event(
                "message_delta",
                {
                    "delta": {"stop_reason": stop_reason, "stop_sequence": None},
                    "usage": {"output_tokens": len(words)},
                },
            )
            yield event("message_stop", {})

        return StreamingResponse(stream(), media_type="text/event-stream")

    return app


def _text(content: Any) -> str:
    """A message's text: a string, or its text and tool-result blocks."""
    if isinstance(content, str):
        return content
    return " ".join(
        str(block.get("text") or block.get("content") or "")
        for block in content
        if block.get("type") in ("text", "tool_result")
    )


def _tool_result_problem(messages: list[dict[str, Any]]) -> str | None:
    uses: set[str] = set()
    for message in messages:
        for block in message["content"] if isinstance(message["content"], list) else []:
            if block.get("type") == "tool_use":
                uses.add(block["id"])
            if block.get("type") == "tool_result" and block.get("tool_use_id") not in uses:
                return "tool_result block(s) provided when previous message has no tool_use"
    return None


def _tool_use_stream(event: Any, model: str, name: str, heard: str, usage_in: int) -> Any:
    message = {
        "id": "msg_2", "type": "message", "role": "assistant", "content": [], "model": model,
        "stop_reason": None, "stop_sequence": None,
        "usage": {"input_tokens": usage_in, "output_tokens": 0},
    }  # fmt: skip
    yield event("message_start", {"message": message})
    block = {"type": "tool_use", "id": "toolu_01", "name": name, "input": {}}
    yield event("content_block_start", {"index": 0, "content_block": block})
    arguments = json.dumps({"text": heard})
    for start in range(0, len(arguments), 6):
        delta = {"type": "input_json_delta", "partial_json": arguments[start : start + 6]}
        yield event("content_block_delta", {"index": 0, "delta": delta})
    yield event("content_block_stop", {"index": 0})
    yield event(
        "message_delta",
        {
            "delta": {"stop_reason": "tool_use", "stop_sequence": None},
            "usage": {"output_tokens": 7},
        },
    )
    yield event("message_stop", {})
