"""`GET /v1/models`, `GET /v1/models/{id}`, and the `/tokenize` / `/detokenize` helpers."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from palestra.core.errors import ModelNotFoundError
from palestra.serve.openai.schemas import DetokenizeBody, TokenizeBody

router = APIRouter()
CREATED = 1_700_000_000


def _card(name: str) -> dict[str, Any]:
    return {"id": name, "object": "model", "created": CREATED, "owned_by": "palestra"}


@router.get("/v1/models")
async def list_models(request: Request) -> dict[str, Any]:
    names = await request.app.state.upstream.models()
    return {"object": "list", "data": [_card(name) for name in names]}


@router.get("/v1/models/{model_id:path}")
async def get_model(model_id: str, request: Request) -> dict[str, Any]:
    names = await request.app.state.upstream.models()
    if model_id not in names:
        raise ModelNotFoundError(
            f"model {model_id!r} is not served; served models: {', '.join(names) or 'none'}",
            param="model",
            code="model_not_found",
        )
    return _card(model_id)


@router.post("/tokenize")
async def tokenize(body: TokenizeBody, request: Request) -> dict[str, Any]:
    payload: dict[str, Any] = {"model": body.model, "prompt": body.prompt}
    if body.messages is not None:
        payload = {
            "model": body.model,
            "messages": [{"role": m.role, "content": m.text()} for m in body.messages],
        }
    result: dict[str, Any] = await request.app.state.upstream.call(body.model, "/tokenize", payload)
    return result


@router.post("/detokenize")
async def detokenize(body: DetokenizeBody, request: Request) -> dict[str, Any]:
    result: dict[str, Any] = await request.app.state.upstream.call(
        body.model, "/detokenize", body.model_dump()
    )
    return result
