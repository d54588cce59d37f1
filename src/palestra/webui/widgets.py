"""Small pieces the pages share: who the user is, images from an upload, sampling
sliders, status notices, and the message box that is emptied in the browser the moment a
message is sent (nothing typed after Enter is wiped) and keeps what is typed while a reply
streams (Enter then says to wait or stop, and the text stays)."""

from __future__ import annotations

import base64
import mimetypes
from pathlib import Path
from typing import Any

from palestra.core.errors import InvalidRequestError

MAX_IMAGE_BYTES = 10 * 1024 * 1024
# Run in the browser on Enter: (box, busy) -> (sent, box, notice). Idle, the message moves
# to the hidden `sent` box and the box empties at once; while a reply streams the text
# stays in the box and the notice says why.
TAKE_JS = """(message, busy) => busy
  ? [null, message, "Wait for the reply to finish, or press Stop. Your text is kept."]
  : [message, {text: "", files: []}, ""]"""


def message_box(prefix: str, placeholder: str, interactive: bool = True) -> tuple[Any, Any, Any]:
    """(box, sent, busy): the message box with its send/stop button, the hidden box a sent
    message moves to, and the hidden flag a streaming reply sets."""
    import gradio as gr

    with gr.Row(elem_classes="input-row"):
        box = gr.MultimodalTextbox(
            placeholder=placeholder, file_types=["image"], show_label=False,
            elem_id=f"{prefix}-input", submit_btn=True, stop_btn=False, interactive=interactive,
        )  # fmt: skip
    sent = gr.MultimodalTextbox(visible="hidden", elem_id=f"{prefix}-sent")
    busy = gr.Checkbox(False, visible="hidden", elem_id=f"{prefix}-busy")
    return box, sent, busy


def streaming(on: bool, **changes: Any) -> Any:
    """The message box's button while a reply streams (Stop) and after (Send), with any
    other `changes` to the box."""
    import gradio as gr

    return gr.update(submit_btn=not on, stop_btn=on, **changes)


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
