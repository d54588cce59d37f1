"""The `/v1/responses` routes: create (streamed or not), retrieve, delete, list a
response's input items, and cancel (which only background responses allow, and Palestra
runs none). A request becomes a chat completion over the conversation so far (the stored
turns before `previous_response_id`, then this turn's input) and runs on the same
workers."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, StreamingResponse

from palestra.core.errors import InvalidRequestError
from palestra.serve.disconnect import unless_disconnected
from palestra.serve.openai.chat import payloads, token_logprobs
from palestra.serve.openai.choices import ChoiceStreams, collect
from palestra.serve.openai.images import resolve_images
from palestra.serve.responses.output import ResponseDraft, new_item_id, response_events
from palestra.serve.responses.schemas import (
    ItemReference,
    ResponsesRequest,
    chat_messages,
    parse_item,
)
from palestra.serve.responses.store import ResponseStore, StoredResponse

router = APIRouter()


def _store(request: Request) -> ResponseStore:
    store: ResponseStore = request.app.state.responses
    return store


def _input(body: ResponsesRequest, store: ResponseStore) -> tuple[list[Any], list[dict]]:
    """This turn's input items (references resolved) and the same as stored dicts."""
    items = [
        parse_item(store.item(item.id)) if isinstance(item, ItemReference) else item
        for item in body.input_items()
    ]
    stored = []
    for item in items:
        data = item.model_dump(mode="json", by_alias=True, exclude_none=True)
        if isinstance(data.get("content"), str):  # listed as OpenAI lists it: as parts
            data["content"] = [{"type": "input_text", "text": data["content"]}]
        stored.append({"status": "completed", **data, "id": data.get("id") or new_item_id("msg")})
    return items, stored


@router.post("/v1/responses", response_model=None)
async def create_response(
    body: ResponsesRequest, request: Request
) -> JSONResponse | StreamingResponse:
    store = _store(request)
    history = store.history(body.previous_response_id) if body.previous_response_id else []
    items, stored_items = _input(body, store)
    input_messages = chat_messages(items)
    chat = body.chat_request(history + input_messages)
    messages = chat.message_dicts()
    await resolve_images(messages, request.app.state.settings.image_limits)
    streams = ChoiceStreams(
        request.app.state.upstream, body.model, payloads(chat, messages),
        request.app.state.metrics,
    )  # fmt: skip
    try:
        await unless_disconnected(request, streams.first())
    except BaseException:
        await streams.aclose()
        raise
    draft = ResponseDraft(body, chat)

    def keep(done: ResponseDraft) -> None:
        if body.store:
            store.put(
                StoredResponse(
                    done.as_dict(), stored_items, [*input_messages, done.reply],
                    body.previous_response_id,
                )
            )  # fmt: skip

    if body.stream:
        return StreamingResponse(
            response_events(draft, streams, keep), media_type="text/event-stream"
        )
    (result,) = await collect(streams, 1)
    logprobs = [entry for chunk in result.chunks for entry in token_logprobs(chunk)]
    draft.finish(
        result.text, result.finish_reason, result.tool_calls, logprobs,
        result.prompt_tokens, result.completion_tokens,
    )  # fmt: skip
    keep(draft)
    return JSONResponse(draft.as_dict())


@router.get("/v1/responses/{response_id}")
async def retrieve_response(response_id: str, request: Request) -> dict[str, Any]:
    return _store(request).get(response_id).response


@router.delete("/v1/responses/{response_id}")
async def delete_response(response_id: str, request: Request) -> dict[str, Any]:
    _store(request).delete(response_id)
    return {"id": response_id, "object": "response", "deleted": True}


@router.get("/v1/responses/{response_id}/input_items")
async def list_input_items(
    response_id: str,
    request: Request,
    limit: int = Query(20, ge=1, le=100),
    order: Literal["asc", "desc"] = "desc",
    after: str | None = None,
    include: list[str] | None = Query(None, alias="include[]"),  # noqa: B008 (accepted)
) -> dict[str, Any]:
    """A stored response's input items, newest first unless `order=asc`, paged by
    `after` (an item id) and `limit`."""
    items = list(_store(request).get(response_id).input_items)
    if order == "desc":
        items.reverse()
    if after is not None:
        ids = [item["id"] for item in items]
        if after not in ids:
            raise InvalidRequestError(f"after: no input item {after!r}", param="after")
        items = items[ids.index(after) + 1 :]
    page = items[:limit]
    return {
        "object": "list",
        "data": page,
        "first_id": page[0]["id"] if page else None,
        "last_id": page[-1]["id"] if page else None,
        "has_more": len(items) > limit,
    }


@router.post("/v1/responses/{response_id}/cancel")
async def cancel_response(response_id: str, request: Request) -> dict[str, Any]:
    _store(request).get(response_id)
    raise InvalidRequestError(
        "only background responses can be cancelled, and Palestra answers in the "
        "foreground: close a streamed response's connection to stop it",
        param="response_id",
    )
