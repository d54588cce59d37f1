"""A stand-in for Anthropic's Messages API (`POST /v1/messages`, streamed as server-sent
events like the real one): replies "Claude heard: <last user message>", checks the key
(`x-api-key` or a bearer token, as SDK versions differ), and keeps every request body for
the test to inspect."""

from __future__ import annotations

import json
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, StreamingResponse

API_KEY = "sk-ant-test"


def build_anthropic_app() -> FastAPI:
    app = FastAPI()
    app.state.bodies = []

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/v1/messages", response_model=None)
    async def messages(request: Request) -> Any:
        bearer = request.headers.get("authorization", "").removeprefix("Bearer ")
        if API_KEY not in (request.headers.get("x-api-key"), bearer):
            error = {"type": "authentication_error", "message": "invalid x-api-key"}
            return JSONResponse({"type": "error", "error": error}, status_code=401)
        body = await request.json()
        app.state.bodies.append(body)
        if body["model"] == "missing-model":
            error = {"type": "not_found_error", "message": f"model: {body['model']}"}
            return JSONResponse({"type": "error", "error": error}, status_code=404)
        text = "Claude heard: " + body["messages"][-1]["content"]
        words = text.split(" ")
        limit = body["max_tokens"]
        stop_reason = "max_tokens" if len(words) > limit else "end_turn"
        words = words[:limit]
        usage_in = sum(len(m["content"].split()) for m in body["messages"])

        def event(name: str, data: dict[str, Any]) -> str:
            return f"event: {name}\ndata: {json.dumps({'type': name, **data})}\n\n"

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
