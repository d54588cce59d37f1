"""Palestra's typed errors.

Every error a user can cause or meet is one of these, with a message that says what to do
next. Servers map them to HTTP statuses in one place (`http_status` is that hint); the CLI
prints `str(error)` as one line. This module knows nothing about HTTP frameworks.
"""

from __future__ import annotations


class PalestraError(Exception):
    """Base class. `http_status` and `error_type` follow OpenAI's error envelope."""

    http_status: int = 500
    error_type: str = "internal_error"

    def __init__(self, message: str, *, param: str | None = None, code: str | None = None):
        super().__init__(message)
        self.message = message
        self.param = param
        self.code = code


class InvalidRequestError(PalestraError):
    """The caller asked for something malformed or impossible."""

    http_status = 400
    error_type = "invalid_request_error"


class NotFoundError(PalestraError):
    """Something named by the caller (a model, a stored response) that does not exist."""

    http_status = 404
    error_type = "not_found_error"


class ModelNotFoundError(NotFoundError):
    """A model path, name or id that Palestra cannot find or recognise."""


class TemplateError(PalestraError):
    """A chat template is unknown or cannot render the conversation it was given."""

    http_status = 400
    error_type = "invalid_request_error"


class BackendError(PalestraError):
    """An inference engine failed or cannot do what was asked on this platform."""

    http_status = 500
    error_type = "backend_error"


class UnsupportedError(BackendError):
    """A feature this backend or platform does not offer (8-bit without CUDA, say)."""

    http_status = 400
    error_type = "invalid_request_error"


class RetryLaterError(PalestraError):
    """The request may succeed later: after `retry_after` seconds when the server can tell,
    else the class's `default_retry_after` (sent as the `Retry-After` header; none when
    both are None)."""

    default_retry_after: float | None = None

    def __init__(
        self,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        retry_after: float | None = None,
    ):
        super().__init__(message, param=param, code=code)
        self.retry_after = self.default_retry_after if retry_after is None else retry_after


class OverloadedError(RetryLaterError):
    """A worker's queue is full; the client should retry later."""

    http_status = 429
    error_type = "overloaded_error"
    default_retry_after = 1.0


class NoWorkerError(RetryLaterError):
    """The model is known but no live worker can take the request now (its workers failed,
    or its last one left and may be coming back)."""

    http_status = 503
    error_type = "service_unavailable_error"


class AuthenticationError(PalestraError):
    """A missing or wrong API key."""

    http_status = 401
    error_type = "authentication_error"


ERROR_TYPES: dict[str, type[PalestraError]] = {
    cls.error_type: cls
    for cls in (
        InvalidRequestError,
        ModelNotFoundError,
        BackendError,
        OverloadedError,
        NoWorkerError,
        AuthenticationError,
    )
}


def error_envelope(error: PalestraError) -> dict[str, dict[str, str | None]]:
    """OpenAI's error shape: {"error": {"message", "type", "param", "code"}}."""
    return {
        "error": {
            "message": error.message,
            "type": error.error_type,
            "param": error.param,
            "code": error.code,
        }
    }


def error_from_envelope(body: dict, status: int) -> PalestraError:
    """Rebuild a typed error from an envelope another Palestra service sent."""
    info = body.get("error") if isinstance(body, dict) else None
    if not isinstance(info, dict):
        return BackendError(f"upstream answered {status} without an error envelope")
    cls = ERROR_TYPES.get(str(info.get("type")), PalestraError)
    error = cls(
        str(info.get("message") or "upstream error"), param=info.get("param"), code=info.get("code")
    )
    error.http_status = status
    return error
