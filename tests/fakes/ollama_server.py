"""A scripted stand-in of Ollama's native chat API (`POST /api/chat`, newline-delimited
JSON), the wire of a provider reached through LiteLLM (`ollama_chat/<model>`). As strict
as Ollama about what the tests exercise: an unknown model is a 404 `{"error": ...}`, a
tool message must follow an assistant's tool call, sampling goes in `options`.

Replies: with tools after a user turn, a call of the first tool with
`{"text": <last user text>}` (Ollama sends calls whole, arguments as an object); after a
tool turn, "The tool said: <content>"; else "Ollama <model> heard: <last user text>".
Request bodies go to `app.state.bodies`.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

MODELS = ("llama3.2",)
FIELDS = {"model", "messages", "tools", "format", "options", "stream", "keep_alive", "think"}


def _problem(body: dict[str, Any]) -> tuple[int, str] | None:
    if body.get("model", "").split(":")[0] not in MODELS:
        return 404, f'model "{body.get("model")}" not found, try pulling it first'
    unknown = sorted(set(body) - FIELDS)
    if unknown:
        return 400, f"invalid request: unknown field {unknown[0]!r}"
    called = False
    for message in body.get("messages") or []:
        called = called or bool(message.get("tool_calls"))
        if message.get("role") == "tool" and not called:
            return 400, "invalid message: a tool message must follow a tool call"
    return None


def build_ollama_app() -> FastAPI:
    app = FastAPI()
    app.state.bodies = []

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/api/chat")
    async def chat(request: Request) -> Response:
        body = await request.json()
        app.state.bodies.append(body)
        problem = _problem(body)
        if problem:
            return JSONResponse({"error": problem[1]}, status_code=problem[0])
        last = body["messages"][-1]
        text = last.get("content") or ""
        base = {"model": body["model"], "created_at": "2026-12-01T00:00:00Z"}
        lines: list[dict[str, Any]] = []
        tools = body.get("tools") or []
        if tools and last["role"] == "user":
            call = {"function": {"name": tools[0]["function"]["name"], "arguments": {"text": text}}}
            lines.append({"message": {"role": "assistant", "content": "", "tool_calls": [call]},
                          "done": False})  # fmt: skip
        else:
            reply = (
                f"The tool said: {text}" if last["role"] == "tool"
                else f"Ollama {body['model']} heard: {text}"
            )  # fmt: skip
            for i, word in enumerate(reply.split(" ")):
                piece = word if i == 0 else " " + word
                lines.append({"message": {"role": "assistant", "content": piece}, "done": False})
        lines.append({"message": {"role": "assistant", "content": ""}, "done": True,
                      "done_reason": "stop", "prompt_eval_count": 8, "eval_count": 5})  # fmt: skip
        if body.get("stream") is False:
            whole = "".join(line["message"]["content"] for line in lines)
            calls = [c for line in lines for c in line["message"].get("tool_calls", [])]
            message = {
                "role": "assistant",
                "content": whole,
                **({"tool_calls": calls} if calls else {}),
            }
            return JSONResponse({**base, **lines[-1], "message": message})

        async def stream() -> Any:
            for line in lines:
                yield json.dumps({**base, **line}) + "\n"

        return StreamingResponse(stream(), media_type="application/x-ndjson")

    return app
