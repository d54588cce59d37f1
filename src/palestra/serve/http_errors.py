"""Mapping errors to HTTP in one place, for every Palestra app: typed errors, request
validation failures, malformed JSON, unknown routes and crashes all answer in OpenAI's
envelope `{"error": {"message", "type", "param", "code"}}` with the right status."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from palestra.core.errors import (
    InvalidRequestError,
    ModelNotFoundError,
    PalestraError,
    error_envelope,
)

logger = logging.getLogger(__name__)


def error_response(error: PalestraError) -> JSONResponse:
    return JSONResponse(error_envelope(error), status_code=error.http_status)


def _validation_error(exc: RequestValidationError) -> InvalidRequestError:
    first = exc.errors()[0] if exc.errors() else {}
    location = [str(part) for part in first.get("loc", ()) if part != "body"]
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


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(PalestraError)
    async def _palestra(_: Request, exc: PalestraError) -> JSONResponse:
        return error_response(exc)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        return error_response(_validation_error(exc))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 404:
            error: PalestraError = ModelNotFoundError(f"no route {request.url.path}")
        elif exc.status_code == 405:
            error = InvalidRequestError(f"{request.method} is not allowed on {request.url.path}")
        else:
            error = PalestraError(str(exc.detail))
        error.http_status = exc.status_code
        return error_response(error)

    @app.exception_handler(Exception)
    async def _crash(_: Request, exc: Exception) -> JSONResponse:
        logger.exception("unhandled error")
        return error_response(PalestraError(f"internal error: {type(exc).__name__}: {exc}"))
