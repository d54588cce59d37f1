"""How text reaches the page: user and model text shown as markdown with any HTML in it
shown as text (escaped outside code, where markdown already shows it literally), and images
in replies that would load from another host blocked (a tracking pixel or an IP leak for
voters); and errors turned into one line for the user, without internal addresses.

The page also sends a Content-Security-Policy that lets images load only from the page
itself and data: URLs (`IMAGE_POLICY`), so nothing that slips past the text rules loads
either.
"""

from __future__ import annotations

import re

IMAGE_POLICY = "img-src 'self' data: blob:"
# A fenced block (``` or ~~~, to its closing fence or the end) or an inline code span.
_CODE = re.compile(r"(^|\n)(```|~~~)[^\n]*\n.*?(\n\2[^\n]*(?=\n|$)|$)|(`+)[^`\n]*?\4", re.S)
# ![alt](url "title") with a URL that is not a data: URL.
_REMOTE_IMAGE = re.compile(r"!\[([^\]]*)\]\(\s*<?(?!data:)([^)\s>]+)>?[^)]*\)", re.I)
_URL = re.compile(r"\b(?:https?|wss?)://[^\s'\"<>)\]]+", re.I)


def _escape(text: str) -> str:
    text = text.replace("&", "&amp;").replace("<", "&lt;")  # no tag can open: ">" may stay
    return _REMOTE_IMAGE.sub(lambda m: f"[image not loaded: {m.group(2)}]", text)


def shown(text: str) -> str:
    """`text` as markdown for the chat bubble: HTML outside code shown as text, remote
    markdown images replaced by a note naming their address."""
    parts, last = [], 0
    for code in _CODE.finditer(text):
        start = code.start() + len(code.group(1) or "")
        parts.append(_escape(text[last:start]))
        parts.append(text[start : code.end()])
        last = code.end()
    parts.append(_escape(text[last:]))
    return "".join(parts)


def user_error(error: BaseException | str, model: str | None = None) -> str:
    """One line for the user about a failed request: the error's message without the
    internal addresses it may carry (a worker's or a provider's URL)."""
    message = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    message = _URL.sub("(address hidden)", message)
    return f"{model} could not answer: {message}" if model else message
