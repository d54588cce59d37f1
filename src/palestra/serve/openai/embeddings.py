"""`POST /v1/embeddings`: vectors for text, as floats or base64 little-endian float32."""

from __future__ import annotations

import base64
import struct
from typing import Any

from fastapi import APIRouter, Request

from palestra.serve.openai.schemas import EmbeddingRequest
from palestra.serve.wire import EmbedResponse

router = APIRouter()


@router.post("/v1/embeddings")
async def embeddings(body: EmbeddingRequest, request: Request) -> dict[str, Any]:
    texts = body.texts()
    answer = EmbedResponse.model_validate(
        await request.app.state.upstream.call(
            body.model, "/embed", {"model": body.model, "input": texts}
        )
    )
    data = []
    for index, vector in enumerate(answer.embeddings):
        encoded: Any = vector
        if body.encoding_format == "base64":
            encoded = base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()
        data.append({"object": "embedding", "index": index, "embedding": encoded})
    return {
        "object": "list",
        "data": data,
        "model": body.model,
        "usage": {"prompt_tokens": answer.prompt_tokens, "total_tokens": answer.prompt_tokens},
    }
