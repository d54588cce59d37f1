"""A scripted OpenAI-compatible judge: `/v1/chat/completions` (streamed or not) that reads
the MT-bench judge prompt it is sent and answers by fixed rules, so tests know every
verdict in advance:

- single grading: "Rating: [[8]]" when the judged answer is over 200 characters, else
  "Rating: [[3]]"; but the first time a given prompt with a reference answer arrives, a
  malformed reply with no rating (so the caller must retry);
- pairwise, first turn: the longer answer wins, in either order (consistent);
- pairwise, second turn (multi-turn prompts): always "[[A]]", whichever answer is A
  (position bias: the verdict flips with the order);
- a prompt containing "ALWAYS-MALFORMED" never gets a verdict.

`GET /stats` counts the chat requests received.
"""

from __future__ import annotations

import json
import re
import time
from collections import Counter
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, StreamingResponse

MALFORMED = "The answer is fine overall, but I will not give a rating in the format."


def _between(text: str, start: str, end: str) -> str:
    match = re.search(re.escape(start) + r"\n(.*?)\n" + re.escape(end), text, re.S)
    return match.group(1) if match else ""


def verdict(prompt: str, seen: Counter[str]) -> str:
    seen[prompt] += 1
    if "ALWAYS-MALFORMED" in prompt:
        return MALFORMED
    if "Assistant B" in prompt:
        if "<|The Start of Assistant A's Conversation with User|>" in prompt:
            return "Both are similar, but I prefer the first. [[A]]"
        a = _between(
            prompt, "[The Start of Assistant A's Answer]", "[The End of Assistant A's Answer]"
        )
        b = _between(
            prompt, "[The Start of Assistant B's Answer]", "[The End of Assistant B's Answer]"
        )
        return "A is more complete. [[A]]" if len(a) > len(b) else "B is more complete. [[B]]"
    if "Reference" in prompt and seen[prompt] == 1:
        return MALFORMED
    answer = _between(
        prompt, "[The Start of Assistant's Answer]", "[The End of Assistant's Answer]"
    )
    if not answer:  # multi-turn single grading: the second answer
        answer = prompt.rsplit("### Assistant A:\n", 1)[-1].split("\n\n<|The End of", 1)[0]
    rating = 8 if len(answer) > 200 else 3
    return f"Explanation: judged by length. Rating: [[{rating}]]"


def build_judge_app() -> FastAPI:
    app = FastAPI()
    seen: Counter[str] = Counter()
    stats = {"requests": 0}

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/stats")
    async def get_stats() -> dict[str, int]:
        return dict(stats)

    @app.post("/v1/chat/completions", response_model=None)
    async def chat(request: Request) -> Any:
        body = await request.json()
        stats["requests"] += 1
        prompt = body["messages"][-1]["content"]
        text = verdict(prompt, seen)
        usage = {"prompt_tokens": len(prompt) // 4, "completion_tokens": len(text) // 4}
        usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
        base = {"id": "judge-1", "created": int(time.time()), "model": body["model"]}
        if not body.get("stream"):
            message = {"role": "assistant", "content": text}
            return JSONResponse({
                **base, "object": "chat.completion", "usage": usage,
                "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
            })  # fmt: skip

        def events() -> Any:
            chunk = {**base, "object": "chat.completion.chunk"}
            for piece in (text[: len(text) // 2], text[len(text) // 2 :]):
                delta = {"index": 0, "delta": {"content": piece}, "finish_reason": None}
                yield f"data: {json.dumps({**chunk, 'choices': [delta]})}\n\n"
            done = {"index": 0, "delta": {}, "finish_reason": "stop"}
            yield f"data: {json.dumps({**chunk, 'choices': [done]})}\n\n"
            yield f"data: {json.dumps({**chunk, 'choices': [], 'usage': usage})}\n\n"
            yield "data: [DONE]\n\n"

        return StreamingResponse(events(), media_type="text/event-stream")

    return app
