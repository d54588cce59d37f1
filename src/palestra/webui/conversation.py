"""`Conversation`: one model's side of a chat in the web UI, and how it is shown and logged.

It holds the messages (images as data URLs), turns itself into what Gradio's chatbot shows
(markdown, HTML shown as text, remote images blocked: `render.shown`; stopped replies
marked) and into FastChat's logged conversation state (images as their SHA-256, never the
image itself), and enforces the input limits. A failed exchange is taken out (`fail`):
an error is a notice on the page, never a turn sent back to the model.
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass, field
from typing import Any

from palestra.core.errors import InvalidRequestError
from palestra.core.types import Message
from palestra.webui.render import shown

STOPPED_MARK = "\n\n*(stopped)*"


@dataclass
class Conversation:
    model: str
    system: str = ""
    messages: list[Message] = field(default_factory=list)
    conv_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    stopped: set[int] = field(default_factory=set)  # indices of replies stopped by the user
    error: str = ""  # the last exchange's failure, for the page's notice
    feedback: dict[int, tuple[str, int]] = field(default_factory=dict)  # reply: (kind, event)
    writer: int = 0  # the ticket of the stream that may write the last reply (not saved)

    @property
    def turns(self) -> int:
        return sum(1 for m in self.messages if m.role == "user")

    def check_input(self, text: str, max_chars: int, max_turns: int) -> None:
        if not text.strip():
            raise InvalidRequestError("type a message first")
        if len(text) > max_chars:
            raise InvalidRequestError(
                f"your message has {len(text)} characters; the limit is {max_chars}"
            )
        if self.turns >= max_turns:
            raise InvalidRequestError(
                f"this conversation reached its {max_turns}-turn limit; clear it to start anew"
            )

    def ask(self, text: str, images: tuple[str, ...] = ()) -> None:
        self.messages.append(Message("user", text, images))
        self.messages.append(Message("assistant", ""))

    def set_reply(self, text: str) -> None:
        self.messages[-1] = Message("assistant", text)

    @property
    def reply(self) -> str:
        return self.messages[-1].content if self.messages else ""

    def prompt_messages(self) -> list[Message]:
        """What the model is sent: system, history and the new question (the empty reply
        about to be written, and replies stopped before any text, are left out)."""
        head = [Message("system", self.system)] if self.system else []
        return head + [m for m in self.messages if m.content or m.images]

    def drop_last_reply(self) -> None:
        if self.messages and self.messages[-1].role == "assistant":
            self.messages[-1] = Message("assistant", "")
            self.stopped.discard(len(self.messages) - 1)

    def fail(self, error: str) -> Message | None:
        """Take the last exchange out after its reply failed; returns its question (for the
        message box), and keeps `error` for the page's notice."""
        self.error = error
        if len(self.messages) < 2 or self.messages[-2].role != "user":
            return None
        question = self.messages[-2]
        del self.messages[-2:]
        self.stopped -= {len(self.messages), len(self.messages) + 1}
        return question

    def mark_stopped(self) -> None:
        if self.messages and self.messages[-1].role == "assistant":
            self.stopped.add(len(self.messages) - 1)

    @property
    def reply_stopped(self) -> bool:
        """Whether the person stopped the reply being written (the last message)."""
        return bool(self.messages) and len(self.messages) - 1 in self.stopped

    def begin_reply(self) -> int:
        """A ticket for the stream about to write the last reply. It supersedes any earlier
        stream still ending: Stop does not wait for a stream, so a new question can come
        before a stopped stream has noticed, and that stream must not write into it."""
        self.writer += 1
        return self.writer

    def end_streams(self) -> None:
        """End any stream still writing this conversation, which the page no longer shows
        (a new chat, another chat opened, a new round): it stops and writes nothing more."""
        self.writer += 1

    def owns_reply(self, ticket: int) -> bool:
        """Whether the stream holding `ticket` is still the last reply's writer."""
        return ticket == self.writer

    def writes(self, ticket: int) -> bool:
        """Whether the stream holding `ticket` may go on writing: it is the writer and its
        reply was not stopped."""
        return self.owns_reply(ticket) and not self.reply_stopped

    def truncate(self, index: int) -> None:
        """Keep the messages before `index` (an edit rewrites history from there)."""
        del self.messages[index:]
        self.stopped = {i for i in self.stopped if i < index}

    def chatbot(self) -> list[dict[str, str]]:
        bubbles = []
        for index, message in enumerate(self.messages):
            text = shown(message.content)
            if message.images:
                text = f"[{len(message.images)} image(s) attached]\n\n" + text
            if index in self.stopped:
                text += STOPPED_MARK
            bubbles.append({"role": message.role, "content": text})
        return bubbles

    def saved(self) -> dict[str, Any]:
        """What a browser keeps of the chat (images are left out: a browser's storage holds
        a few megabytes)."""
        return {
            "id": self.conv_id,
            "model": self.model,
            "system": self.system,
            "messages": [
                {"role": m.role, "content": m.content, "images": len(m.images)}
                for m in self.messages
            ],
            "stopped": sorted(self.stopped),
        }

    @classmethod
    def restored(cls, saved: dict[str, Any]) -> Conversation:
        """A chat from what a browser kept (`saved`)."""
        messages = [
            Message("user" if m.get("role") == "user" else "assistant", str(m.get("content", "")))
            for m in saved.get("messages") or []
            if m.get("role") in ("user", "assistant")
        ]
        return cls(
            str(saved.get("model", "")),
            system=str(saved.get("system", "")),
            messages=messages,
            conv_id=str(saved.get("id") or uuid.uuid4().hex),
            stopped={int(i) for i in saved.get("stopped") or [] if int(i) < len(messages)},
        )

    def state(self) -> dict[str, Any]:
        """FastChat's conversation state, as logged and exported."""
        messages: list[list[Any]] = []
        for message in self.messages:
            if message.images:
                hashes = [hashlib.sha256(url.encode()).hexdigest() for url in message.images]
                messages.append([message.role, [message.content, hashes]])
            else:
                messages.append([message.role, message.content])
        return {
            "template_name": "openai",
            "system_message": self.system,
            "roles": ["user", "assistant"],
            "messages": messages,
            "offset": 0,
            "conv_id": self.conv_id,
            "model_name": self.model,
        }


def owns_replies(pair: tuple[Conversation, Conversation], tickets: tuple[int, int]) -> bool:
    """Whether a battle's two streams (holding `tickets`) still write its replies: the page
    did not go on to a new round or a newer question."""
    return all(c.owns_reply(t) for c, t in zip(pair, tickets, strict=True))
