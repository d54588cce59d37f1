"""Mapping errors to HTTP in one place, for every Palestra app: typed errors, request
validation failures, malformed JSON, unknown routes and crashes all answer in OpenAI's
envelope `{"error": {"message", "type", "param", "code"}}` with the right status (a 405
with its `Allow` header). The OpenAPI document says so: every operation lists those
statuses with the envelope's schema (`ERROR_RESPONSES`), and FastAPI's 422, which Palestra
never sends (validation failures are 400s), is left out."""

from __future__ import annotations

import logging
import math
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from palestra.core.errors import (
    InvalidRequestError,
    ModelNotFoundError,
    PalestraError,
    RetryLaterError,
    error_envelope,
)

logger = logging.getLogger(__name__)


class ErrorDetail(BaseModel):
    message: str
    type: str
    param: str | None = None
    code: str | None = None


class ErrorEnvelope(BaseModel):
    """OpenAI's error body."""

    error: ErrorDetail


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorEnvelope, "description": description}
    for status, description in {
        400: "Invalid request: a malformed body, a bad value or an unknown parameter",
        401: "Missing or wrong API key",
        404: "Unknown model or route",
        405: "Method not allowed (the Allow header lists the allowed ones)",
        429: "Overloaded or rate limited: retry later",
        500: "Internal error",
        502: "An upstream provider could not be reached",
        503: "No live worker serves the model",
    }.items()
}


def _openapi_without_422(app: FastAPI) -> dict[str, Any]:
    if app.openapi_schema is None:
        schema = get_openapi(
            title=app.title, version=app.version, routes=app.routes, description=app.description
        )
        for path in schema.get("paths", {}).values():
            for operation in path.values():
                operation.get("responses", {}).pop("422", None)
        components = schema.get("components", {}).get("schemas", {})
        for unused in ("HTTPValidationError", "ValidationError"):
            components.pop(unused, None)
        app.openapi_schema = schema
    return app.openapi_schema


ANTHROPIC_PATHS = frozenset({"/v1/messages"})  # Anthropic's Messages API: its error shape


def error_response(error: PalestraError, path: str = "") -> JSONResponse:
    """The error in OpenAI's envelope, or in Anthropic's shape on Anthropic's routes; a
    429, and a 503 that knows, say when to retry (`Retry-After` in whole seconds, and
    OpenAI's `retry-after-ms`, which the official SDKs read before their own backoff)."""
    headers = retry_headers(error)
    if path in ANTHROPIC_PATHS:
        from palestra.serve.anthropic.schemas import anthropic_error

        return JSONResponse(anthropic_error(error), error.http_status, headers)
    return JSONResponse(error_envelope(error), error.http_status, headers)


def retry_headers(error: PalestraError) -> dict[str, str] | None:
    if not isinstance(error, RetryLaterError) or error.retry_after is None:
        return None
    seconds = max(error.retry_after, 0.001)
    return {"Retry-After": str(math.ceil(seconds)), "retry-after-ms": str(round(seconds * 1000))}


# Parts pydantic adds to an error's location for the branch of a union it tried.
UNION_BRANCHES = frozenset({"str", "int", "float", "bool", "dict", "list", "none"})


def _validation_error(exc: RequestValidationError) -> InvalidRequestError:
    errors = list(exc.errors())
    # Of a union's failed branches, the one Palestra explained (a value_error) says most.
    first = next((e for e in errors if e.get("type") == "value_error"), errors[0] if errors else {})
    location = [
        str(part)
        for part in first.get("loc", ())
        if part != "body" and "[" not in str(part) and str(part) not in UNION_BRANCHES
    ]
    param = ".".join(location) or None
    kind = first.get("type", "")
    if kind == "json_invalid":
        return InvalidRequestError(
            "the request body is not valid JSON; send a JSON object", code="invalid_json"
        )
    if kind == "extra_forbidden":
        return InvalidRequestError(
            f"unrecognized request argument supplied: {param}",
            param=param,
            code="unknown_parameter",
        )
    message = first.get("msg", "invalid request")
    return InvalidRequestError(
        f"{param}: {message}" if param else message, param=param, code="invalid_value"
    )


def _allowed_methods(request: Request) -> list[str]:
    methods: set[str] = set()
    for route in request.app.router.routes:
        match, _ = route.matches(request.scope)
        if match != Match.NONE:
            methods |= set(getattr(route, "methods", None) or ())
    return sorted(methods)


def install_error_handlers(app: FastAPI) -> None:
    """The handlers, and an OpenAPI document without FastAPI's unused 422 (build the app
    with `responses=ERROR_RESPONSES` so every operation lists the errors)."""
    app.openapi = lambda: _openapi_without_422(app)  # type: ignore[method-assign]

    @app.exception_handler(PalestraError)
    async def _palestra(request: Request, exc: PalestraError) -> JSONResponse:
        return error_response(exc, request.url.path)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        return error_response(_validation_error(exc), request.url.path)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 404:
            error: PalestraError = ModelNotFoundError(f"no route {request.url.path}")
        elif exc.status_code == 405:
            error = InvalidRequestError(f"{request.method} is not allowed on {request.url.path}")
        else:
            error = PalestraError(str(exc.detail))
        error.http_status = exc.status_code
        response = error_response(error)
        response.headers.update(exc.headers or {})
        if exc.status_code == 405:  # every route on this path, not only the first one's
            response.headers["Allow"] = ", ".join(_allowed_methods(request))
        return response

    @app.exception_handler(Exception)
    async def _crash(_: Request, exc: Exception) -> JSONResponse:
        logger.exception("unhandled error")
        return error_response(PalestraError(f"internal error: {type(exc).__name__}: {exc}"))
