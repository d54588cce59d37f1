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


class ModelNotFoundError(PalestraError):
    """A model path, name or id that Palestra cannot find or recognise."""

    http_status = 404
    error_type = "not_found_error"


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
