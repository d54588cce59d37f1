"""A scripted OpenAI-compatible chat model (a hosted provider's stand-in), streamed like
the real API. By the requested model id:

- `scripted-slow`: 40 numbered words, one every 0.25 s (to stop mid-answer);
- `scripted-vision`: "I see N image(s)." for messages with `image_url` parts;
- anything else: "Scripted <model> heard: <last user text>".

`GET /v1/models` lists `app.state.models` and counts calls in `app.state.listings`; every
chat request body is kept in `app.state.bodies`.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import StreamingResponse


def _text_and_images(content: Any) -> tuple[str, int]:
    if isinstance(content, str):
        return content, 0
    text = " ".join(p.get("text", "") for p in content if p.get("type") == "text")
    return text, sum(1 for p in content if p.get("type") == "image_url")


def build_openai_app() -> FastAPI:
    app = FastAPI()
    app.state.bodies = []
    app.state.models = ["scripted", "scripted-slow", "scripted-vision"]
    app.state.listings = 0

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/v1/models")
    async def models() -> dict[str, Any]:
        app.state.listings += 1
        return {"object": "list", "data": [{"id": m, "object": "model"} for m in app.state.models]}

    @app.post("/v1/chat/completions")
    async def chat(request: Request) -> StreamingResponse:
        body = await request.json()
        app.state.bodies.append(body)
        model = body["model"]
        text, images = _text_and_images(body["messages"][-1]["content"])
        delay = 0.0
        if model == "scripted-slow":
            words, delay = [f"word{i}" for i in range(1, 41)], 0.25
        elif model == "scripted-vision":
            words = f"I see {images} image(s).".split()
        else:  # the user's text comes back verbatim (newlines, markdown, HTML)
            words = ["Scripted", model, "heard:", text]
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
