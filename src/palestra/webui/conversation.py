"""`Conversation`: one model's side of a chat in the web UI, and how it is shown and logged.

It holds the messages (images as data URLs), turns itself into what Gradio's chatbot shows
(HTML is left to Gradio's sanitiser, which renders it inert) and into FastChat's logged
conversation state (images as their SHA-256, never the image itself), and enforces the
input limits.
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass, field
from typing import Any

from palestra.core.errors import InvalidRequestError
from palestra.core.types import Message


@dataclass
class Conversation:
    model: str
    system: str = ""
    messages: list[Message] = field(default_factory=list)
    conv_id: str = field(default_factory=lambda: uuid.uuid4().hex)

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

    def chatbot(self) -> list[dict[str, str]]:
        shown = []
        for message in self.messages:
            text = message.content
            if message.images:
                text = f"[{len(message.images)} image(s) attached]\n\n" + text
            shown.append({"role": message.role, "content": text})
        return shown

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
