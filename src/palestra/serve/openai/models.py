"""`GET /v1/models`, `GET /v1/models/{id}`, and the `/tokenize` / `/detokenize` helpers."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from palestra.core.errors import ModelNotFoundError
from palestra.serve.openai.schemas import DetokenizeBody, TokenizeBody
from palestra.serve.wire import ModelList

router = APIRouter()
CREATED = 1_700_000_000


def _card(name: str, served: ModelList) -> dict[str, Any]:
    """OpenAI's model object, plus the input kinds the model takes (as OpenRouter and
    LiteLLM list them), so clients such as the web UI can tell vision models apart."""
    vision = name in served.vision_models
    return {
        "id": name,
        "object": "model",
        "created": CREATED,
        "owned_by": "palestra",
        "input_modalities": ["text", "image"] if vision else ["text"],
    }


@router.get("/v1/models")
async def list_models(request: Request) -> dict[str, Any]:
    served = await request.app.state.upstream.model_list()
    return {"object": "list", "data": [_card(name, served) for name in served.models]}


@router.get("/v1/models/{model_id:path}")
async def get_model(model_id: str, request: Request) -> dict[str, Any]:
    served = await request.app.state.upstream.model_list()
    names = served.models
    if model_id not in names:
        raise ModelNotFoundError(
            f"model {model_id!r} is not served; served models: {', '.join(names) or 'none'}",
            param="model",
            code="model_not_found",
        )
    return _card(model_id, served)


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
