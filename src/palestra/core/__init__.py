"""Plain data types shared by every room: messages, sampling parameters, generation
requests and chunks, and the error hierarchy. Imports nothing heavy."""

from palestra.core.errors import (
    BackendError,
    InvalidRequestError,
    ModelNotFoundError,
    PalestraError,
    TemplateError,
)
from palestra.core.types import (
    FinishReason,
    GenerationChunk,
    GenerationRequest,
    Message,
    Role,
    SamplingParams,
    TokenLogprob,
    Usage,
)

__all__ = [
    "BackendError",
    "FinishReason",
    "GenerationChunk",
    "GenerationRequest",
    "InvalidRequestError",
    "Message",
    "ModelNotFoundError",
    "PalestraError",
    "Role",
    "SamplingParams",
    "TemplateError",
    "TokenLogprob",
    "Usage",
]
