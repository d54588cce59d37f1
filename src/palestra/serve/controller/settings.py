"""`ControllerSettings`: how the controller keeps its worker table and picks a worker."""

from __future__ import annotations

from typing import Literal

from palestra.core.settings import Settings, option

Policy = Literal["shortest_queue", "lottery"]


class ControllerSettings(Settings):
    """How the controller keeps its worker table and picks a worker."""

    expiry: float = option(30.0, "Seconds without a heartbeat before a worker is dropped.")
    policy: Policy = option(
        "shortest_queue",
        "How a worker is picked for a request: shortest_queue or lottery (by capacity).",
        flag="--dispatch-method",
    )
