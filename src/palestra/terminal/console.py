"""Terminal input and output for the chat: prompts with line editing on a TTY (multiline
with Esc+Enter), plain lines from a pipe; streamed output as plain text or rich markdown."""

from __future__ import annotations

import sys
from typing import Any, Protocol


class ChatIO(Protocol):
    def read(self, role: str) -> str | None: ...
    def start_reply(self, role: str) -> None: ...
    def stream(self, text: str) -> None: ...
    def end_reply(self) -> None: ...
    def info(self, text: str) -> None: ...


class PipeIO:
    """Non-interactive: one message per input line, one reply per output line."""

    def read(self, role: str) -> str | None:
        while True:
            line = sys.stdin.readline()
            if not line:
                return None
            if line.strip():
                return line.rstrip("\n")

    def start_reply(self, role: str) -> None:
        pass

    def stream(self, text: str) -> None:
        sys.stdout.write(text.replace("\n", " "))
        sys.stdout.flush()

    def end_reply(self) -> None:
        sys.stdout.write("\n")
        sys.stdout.flush()

    def info(self, text: str) -> None:
        print(text, file=sys.stderr)


class SimpleIO:
    """Interactive, plain text."""

    def __init__(self, multiline: bool = False):
        self.multiline = multiline
        self._session: Any = None
        try:
            from prompt_toolkit import PromptSession

            self._session = PromptSession()
        except Exception:  # no terminal capabilities: fall back to input()
            self._session = None

    def read(self, role: str) -> str | None:
        try:
            if self._session is not None:
                text: str = self._session.prompt(f"{role}: ", multiline=self.multiline)
                return text
            return input(f"{role}: ")
        except (EOFError, KeyboardInterrupt):
            return None

    def start_reply(self, role: str) -> None:
        sys.stdout.write(f"{role}: ")
        sys.stdout.flush()

    def stream(self, text: str) -> None:
        sys.stdout.write(text)
        sys.stdout.flush()

    def end_reply(self) -> None:
        sys.stdout.write("\n")
        sys.stdout.flush()

    def info(self, text: str) -> None:
        print(text, file=sys.stderr)


class RichIO(SimpleIO):
    """Interactive, replies rendered as markdown while they stream."""

    def __init__(self, multiline: bool = False):
        super().__init__(multiline)
        from rich.console import Console

        self.console = Console()
        self._live: Any = None
        self._text = ""

    def start_reply(self, role: str) -> None:
        from rich.live import Live
        from rich.markdown import Markdown

        self._text = ""
        self.console.print(f"[bold]{role}:[/bold]")
        self._live = Live(Markdown(""), console=self.console, refresh_per_second=8)
        self._live.start()

    def stream(self, text: str) -> None:
        from rich.markdown import Markdown

        self._text += text
        if self._live is not None:
            self._live.update(Markdown(self._text))

    def end_reply(self) -> None:
        if self._live is not None:
            self._live.stop()
            self._live = None

    def info(self, text: str) -> None:
        self.console.print(f"[dim]{text}[/dim]")


def make_io(style: str, multiline: bool) -> ChatIO:
    if not sys.stdin.isatty():
        return PipeIO()
    if style == "rich":
        return RichIO(multiline)
    return SimpleIO(multiline)
