"""The chat loop: read a message or command, stream the reply, repeat until exit."""

from __future__ import annotations

import asyncio
import sys

from palestra.core.errors import PalestraError
from palestra.terminal.console import ChatIO
from palestra.terminal.session import COMMANDS, ChatSession


def _debug_prompt(prompt: str) -> None:
    print(f"--- prompt ---\n{prompt}\n--- end of prompt ---", file=sys.stderr)


async def _stream_reply(session: ChatSession, io: ChatIO, debug: bool) -> None:
    io.start_reply("assistant")
    stream = session.reply(_debug_prompt if debug else None)
    try:
        async for chunk in stream:
            io.stream(chunk.text)
    finally:
        await stream.aclose()
        io.end_reply()


def run_chat(session: ChatSession, io: ChatIO, *, debug: bool = False) -> None:
    loop = asyncio.new_event_loop()
    try:
        while True:
            text = io.read("user")
            if text is None:
                break
            text = text.strip()
            if not text:
                continue
            if text.startswith("!!"):
                command, _, argument = text.partition(" ")
                if command == "!!exit":
                    break
                if not _command(session, io, command, argument.strip()):
                    continue
            else:
                session.add_user(text)
            try:
                loop.run_until_complete(_stream_reply(session, io, debug))
            except KeyboardInterrupt:
                io.info("(stopped)")
            except PalestraError as exc:
                io.info(f"error: {exc}")
                session.remove_last_turn()
    finally:
        loop.close()


def _command(session: ChatSession, io: ChatIO, command: str, argument: str) -> bool:
    """Run an in-chat command; True when a reply should be generated afterwards."""
    if command == "!!reset":
        session.reset()
        io.info("(conversation reset)")
    elif command == "!!remove":
        io.info("(last turn removed)" if session.remove_last_turn() else "(nothing to remove)")
    elif command == "!!regen":
        if session.prepare_regen():
            return True
        io.info("(nothing to regenerate)")
    elif command in ("!!save", "!!load"):
        if not argument:
            io.info(f"usage: {command} FILE")
        else:
            try:
                (session.save if command == "!!save" else session.load)(argument)
                io.info(f"({'saved to' if command == '!!save' else 'loaded'} {argument})")
            except (PalestraError, OSError) as exc:
                io.info(f"error: {exc}")
    else:
        io.info(f"unknown command {command}; commands: {COMMANDS}")
    return False
