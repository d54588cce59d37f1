"""A shared serving stack (controller, one bundled-model worker, API server) for the
integration tests that only talk to it; fault tests build their own."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.integration.cluster import Cluster, Process, registered, wait_for


@pytest.fixture(scope="session")
def stack() -> Iterator[dict[str, Process]]:
    cluster = Cluster()
    try:
        controller = cluster.controller()
        worker = cluster.worker(controller.url)
        wait_for(registered(controller, 1), 30, "worker registration")
        api = cluster.api(controller.url)
        yield {"controller": controller, "worker": worker, "api": api}
    finally:
        cluster.stop()
