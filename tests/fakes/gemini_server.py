"""A scripted Gemini API (`generativelanguage.googleapis.com`) stand-in, as strict as the
service about what the tests exercise: the key in `x-goog-api-key`, only `user` and
`model` roles in `contents`, only Gemini's request fields; errors in Google's shape. Vertex
AI's route for Gemini (`/v1beta1/publishers/google/models/...`, express mode: the same key)
answers the same way.

Replies: with function declarations (mode not NONE) after a user turn, a `functionCall` of
the first (or only allowed) function with `{"text": <last user text>}`; after a
`functionResponse`, "The tool said: <result>"; with inline images, "I see N image(s).";
else "Gemini <model> heard: <last user text>". Request bodies go to `app.state.bodies`.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

GEMINI_KEY = "gemini-secret-key-456"
FIELDS = {"contents", "systemInstruction", "generationConfig", "tools", "toolConfig",
          "safetySettings", "cachedContent", "labels"}  # fmt: skip


def _error(status: int, message: str, kind: str) -> JSONResponse:
    return JSONResponse(
        {"error": {"code": status, "message": message, "status": kind}}, status_code=status
    )


def _problem(body: dict[str, Any]) -> str | None:
    unknown = sorted(set(body) - FIELDS)
    if unknown:
        return f'Invalid JSON payload received. Unknown name "{unknown[0]}": Cannot find field.'
    for content in body.get("contents") or []:
        if content.get("role") not in ("user", "model"):
            return "Please use a valid role: user, model."
    if not body.get("contents"):
        return "* GenerateContentRequest.contents: contents is not specified"
    return None


def _reply_parts(body: dict[str, Any], model: str) -> list[dict[str, Any]]:
    last = body["contents"][-1]["parts"]
    texts = [p["text"] for p in last if "text" in p]
    answered = [p["functionResponse"] for p in last if "functionResponse" in p]
    if answered:
        return [{"text": f"The tool said: {answered[0]['response']['result']}"}]
    declarations = [
        d for tool in body.get("tools") or [] for d in tool.get("functionDeclarations") or []
    ]
    config = (body.get("toolConfig") or {}).get("functionCallingConfig") or {}
    if declarations and config.get("mode") != "NONE":
        allowed = config.get("allowedFunctionNames") or [declarations[0]["name"]]
        return [{"functionCall": {"name": allowed[0], "args": {"text": " ".join(texts)}}}]
    images = sum(1 for p in last if "inlineData" in p)
    if images:
        return [{"text": f"I see {images} image(s)."}]
    return [{"text": f"Gemini {model} heard: {' '.join(texts)}"}]


def build_gemini_app() -> FastAPI:
    app = FastAPI()
    app.state.bodies = []

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/{version}/models/{call:path}")
    @app.post("/{version}/publishers/google/models/{call:path}")  # Vertex AI (express mode)
    async def generate(version: str, call: str, request: Request) -> Response:
        if request.headers.get("x-goog-api-key") != GEMINI_KEY:
            return _error(
                400, "API key not valid. Please pass a valid API key.", "INVALID_ARGUMENT"
            )
        model, _, method = call.partition(":")
        body = await request.json()
        app.state.bodies.append(body)
        problem = _problem(body)
        if problem:
            return _error(400, problem, "INVALID_ARGUMENT")
        parts = _reply_parts(body, model)
        usage = {"promptTokenCount": 7, "candidatesTokenCount": 5, "totalTokenCount": 12}
        if method == "generateContent":
            candidate = {"content": {"role": "model", "parts": parts}, "finishReason": "STOP"}
            return JSONResponse({"candidates": [candidate], "usageMetadata": usage})
        pieces = [{"text": w} for w in _pieces(parts[0]["text"])] if "text" in parts[0] else parts

        async def events() -> Any:
            for index, part in enumerate(pieces):
                candidate: dict[str, Any] = {"content": {"role": "model", "parts": [part]}}
                event: dict[str, Any] = {"candidates": [candidate]}
                if index == len(pieces) - 1:
                    candidate["finishReason"] = "STOP"
                    event["usageMetadata"] = usage
                yield f"data: {json.dumps(event)}\r\n\r\n"

        return StreamingResponse(events(), media_type="text/event-stream")

    return app


def _pieces(text: str) -> list[str]:
    words = text.split(" ")
    return [w if i == 0 else " " + w for i, w in enumerate(words)]
