"""Images as chat messages carry them: base64 `data:` URLs, checked by their bytes (PNG,
JPEG, GIF or WebP within a size limit), never by the label they come with. Errors are 400s
that say which image (1-based, in message order) and what is wrong."""

from __future__ import annotations

import base64
import binascii

from palestra.core.errors import InvalidRequestError


def image_type(data: bytes) -> str | None:
    """The image's media type from its first bytes (None: not an image we take)."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data.startswith((b"GIF87a", b"GIF89a")):
        return "image/gif"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return None


def image_error(which: int, problem: str) -> InvalidRequestError:
    return InvalidRequestError(
        f"image {which}: {problem}", param="messages", code="invalid_image_url"
    )


def checked_type(data: bytes, which: int, max_bytes: int) -> str:
    """The media type of an image within `max_bytes` (an error otherwise)."""
    if len(data) > max_bytes:
        raise image_error(which, f"{len(data)} bytes is over the {max_bytes}-byte limit")
    kind = image_type(data)
    if kind is None:
        raise image_error(which, "not a PNG, JPEG, GIF or WebP image")
    return kind


def split_data_url(url: str) -> tuple[str, str] | None:
    """(media type, base64 payload) of a base64 `data:` URL; None for any other URL."""
    header, comma, payload = url.partition(",")
    if not url.startswith("data:") or not comma or not header.endswith(";base64"):
        return None
    return header[5 : -len(";base64")], payload


def decode_data_url(url: str, which: int, max_bytes: int) -> bytes:
    """The bytes of a base64 `data:` image URL, checked."""
    split = split_data_url(url)
    if split is None:
        raise image_error(which, "expected a base64 data: URL (data:image/png;base64,...)")
    payload = split[1]
    if len(payload) * 3 // 4 > max_bytes + 3:
        raise image_error(which, f"over the {max_bytes}-byte limit")
    try:
        data = base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        raise image_error(which, "the data: URL is not valid base64") from None
    checked_type(data, which, max_bytes)
    return data
