"""The options every server command has: where it listens (`ServerAddress`) and how much
it logs (`LogSettings`). Light, so that building the CLI imports no web framework."""

from __future__ import annotations

import logging
import sys
from typing import Literal

from palestra.core.settings import LOG_FORMAT, Settings, option

# The well-known ports (each command's default; `serve` picks free internal ones).
API_PORT = 8000
WEBUI_PORT = 7860
CONTROLLER_PORT = 21001
WORKER_PORT = 21002
DEFAULT_CONTROLLER = f"http://127.0.0.1:{CONTROLLER_PORT}"


class ServerAddress(Settings):
    """Where a server listens."""

    host: str = option("127.0.0.1", "Interface to listen on (0.0.0.0: every interface).")
    port: int = option(0, "Port to listen on; 0: any free port.")


class LogSettings(Settings):
    log_level: Literal["debug", "info", "warning", "error"] = option("info", "Log verbosity.")

    def apply(self) -> None:
        logging.basicConfig(
            level=self.log_level.upper(),
            stream=sys.stderr,
            format=LOG_FORMAT,
        )
