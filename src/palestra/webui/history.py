"""A browser's chat history: the direct chats kept in the browser's own storage (Gradio's
`BrowserState`, never on the server), as plain data a page can restore.

The kept value is `{"current": id or None, "chats": [chat, ...]}`, newest first, where a
chat is `Conversation.saved()` plus its `title` and `updated` time. These functions take
a kept value and return a new one; the page's handlers only wire them.
"""

from __future__ import annotations

import time
from typing import Any

MAX_CHATS = 50  # a browser's storage holds a few megabytes
TITLE_CHARS = 40

History = dict[str, Any]


def empty() -> History:
    return {"current": None, "chats": []}


def _chats(history: History | None) -> list[dict[str, Any]]:
    return [c for c in (history or {}).get("chats") or [] if isinstance(c, dict) and c.get("id")]


def title_of(saved: dict[str, Any]) -> str:
    """A new chat's title: its first question, cut short."""
    for message in saved.get("messages") or []:
        if message.get("role") == "user" and str(message.get("content", "")).strip():
            text = " ".join(str(message["content"]).split())
            return text if len(text) <= TITLE_CHARS else text[: TITLE_CHARS - 1] + "…"
    return "New chat"


def keep(history: History | None, saved: dict[str, Any]) -> History:
    """`saved` (a chat with at least one message) as the current chat, newest first; a
    renamed chat keeps its title."""
    chats = _chats(history)
    known = next((c for c in chats if c["id"] == saved["id"]), None)
    title = known["title"] if known else title_of(saved)
    chat = {**saved, "title": title, "updated": time.time()}
    rest = [c for c in chats if c["id"] != saved["id"]]
    return {"current": saved["id"], "chats": [chat, *rest][:MAX_CHATS]}


def find(history: History | None, chat_id: str | None) -> dict[str, Any] | None:
    return next((c for c in _chats(history) if c["id"] == chat_id), None)


def current(history: History | None) -> dict[str, Any] | None:
    return find(history, (history or {}).get("current"))


def rename(history: History | None, chat_id: str | None, title: str) -> History:
    title = " ".join(title.split())[:80]
    chats = [{**c, "title": title} if c["id"] == chat_id and title else c for c in _chats(history)]
    return {"current": (history or {}).get("current"), "chats": chats}


def delete(history: History | None, chat_id: str | None) -> History:
    chats = [c for c in _chats(history) if c["id"] != chat_id]
    now = (history or {}).get("current")
    return {"current": None if now == chat_id else now, "chats": chats}


def select(history: History | None, chat_id: str | None) -> History:
    return {"current": chat_id if find(history, chat_id) else None, "chats": _chats(history)}


def choices(history: History | None) -> list[tuple[str, str]]:
    """(label, id) for the sidebar's list."""
    return [(c.get("title") or "New chat", c["id"]) for c in _chats(history)]


def export(history: History | None) -> list[dict[str, Any]]:
    """Every kept chat as OpenAI-style messages, for a download."""
    return [
        {
            "title": c.get("title"),
            "model": c.get("model"),
            "updated": c.get("updated"),
            "messages": ([{"role": "system", "content": c["system"]}] if c.get("system") else [])
            + [
                {"role": m["role"], "content": m["content"]}
                for m in c.get("messages") or []
                if m.get("role") in ("user", "assistant")
            ],
        }
        for c in _chats(history)
    ]
