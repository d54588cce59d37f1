"""`ChatSession`: the conversation state of a terminal chat and its in-chat commands
(`!!exit`, `!!reset`, `!!remove`, `!!regen`, `!!save FILE`, `!!load FILE`)."""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass, field
from pathlib import Path

from palestra.backends.base import Backend
from palestra.core.errors import InvalidRequestError
from palestra.core.types import (
    Conversation,
    GenerationChunk,
    GenerationRequest,
    Message,
    SamplingParams,
)

COMMANDS = "!!exit, !!reset, !!remove, !!regen, !!save FILE, !!load FILE"


@dataclass
class ChatSession:
    backend: Backend
    sampling: SamplingParams
    system: str | None = None
    keep_history: bool = True
    messages: list[Message] = field(default_factory=list)

    def conversation(self) -> list[Message]:
        head = [Message("system", self.system)] if self.system else []
        return head + self.messages

    def request(self) -> GenerationRequest:
        """The conversation so far, prepared by the backend (rendered, for a local model)."""
        return self.backend.prepare(
            GenerationRequest(
                sampling=self.sampling, conversation=Conversation(tuple(self.conversation()))
            )
        )

    async def reply(
        self, on_prompt: Callable[[str], None] | None = None
    ) -> AsyncGenerator[GenerationChunk, None]:
        """Stream the assistant's reply to the conversation as it stands."""
        request = self.request()
        if on_prompt:
            on_prompt(request.prompt)
        text = ""
        async for chunk in self.backend.generate(request):
            text += chunk.text
            yield chunk
        self.messages.append(Message("assistant", text.strip()))

    def add_user(self, text: str) -> None:
        if not self.keep_history:
            self.messages.clear()
        self.messages.append(Message("user", text))

    def reset(self) -> None:
        self.messages.clear()

    def remove_last_turn(self) -> bool:
        """Drop the last user message and the reply to it."""
        while self.messages:
            if self.messages.pop().role == "user":
                return True
        return False

    def prepare_regen(self) -> bool:
        """Drop the last reply so it can be generated again."""
        if self.messages and self.messages[-1].role == "assistant":
            self.messages.pop()
        return bool(self.messages) and self.messages[-1].role == "user"

    def save(self, path: str) -> None:
        data = {
            "template": self.backend.template.name,
            "model": self.backend.model_name,
            "system": self.system,
            "messages": [m.to_dict() for m in self.messages],
        }
        Path(path).expanduser().write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n")

    def load(self, path: str) -> None:
        file = Path(path).expanduser()
        try:
            data = json.loads(file.read_text("utf-8"))
            messages = [Message.from_dict(m) for m in data["messages"]]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise InvalidRequestError(f"cannot load a conversation from {path}: {exc}") from exc
        self.system = data.get("system") or self.system
        self.messages = [m for m in messages if m.role != "system"]
