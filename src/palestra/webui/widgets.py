"""Small pieces the pages share: who the user is, images from an upload, sampling
sliders, status notices."""

from __future__ import annotations

import base64
import mimetypes
from pathlib import Path
from typing import Any

from palestra.core.errors import InvalidRequestError

MAX_IMAGE_BYTES = 10 * 1024 * 1024
EMPTY_INPUT: dict[str, Any] = {"text": "", "files": []}


def take(message: Any) -> tuple[Any, dict[str, Any]]:
    """A message box's value, and the empty value the box takes once it is sent."""
    return message, EMPTY_INPUT


def user_of(service: Any, request: Any) -> str:
    """The hashed user behind a Gradio request."""
    host = getattr(getattr(request, "client", None), "host", None)
    headers = {k.lower(): v for k, v in dict(getattr(request, "headers", {}) or {}).items()}
    return str(service.user(host, headers))


def images_of(message: dict[str, Any] | str | None) -> tuple[str, tuple[str, ...]]:
    """(text, image data URLs) from a MultimodalTextbox value."""
    if message is None:
        return "", ()
    if isinstance(message, str):
        return message, ()
    urls = []
    for item in message.get("files") or []:
        path = Path(item if isinstance(item, str) else item.get("path", ""))
        if path.stat().st_size > MAX_IMAGE_BYTES:
            raise InvalidRequestError(f"{path.name} is larger than 10 MB")
        kind = mimetypes.guess_type(path.name)[0] or "image/png"
        urls.append(f"data:{kind};base64," + base64.b64encode(path.read_bytes()).decode())
    return str(message.get("text") or ""), tuple(urls)


def notice(text: str, kind: str = "info") -> str:
    """A one-line status under the chat (markdown)."""
    if not text:
        return ""
    mark = {"info": "", "ok": "**Done:** ", "error": "**Error:** "}[kind]
    return f"{mark}{text}"


def sampling_controls() -> tuple[Any, Any, Any]:
    import gradio as gr

    temperature = gr.Slider(0.0, 2.0, value=0.7, step=0.05, label="Temperature")
    top_p = gr.Slider(0.05, 1.0, value=1.0, step=0.05, label="Top p")
    max_tokens = gr.Slider(16, 2048, value=256, step=16, label="Max output tokens")
    return temperature, top_p, max_tokens
