"""`palestra serve`: controller, worker, OpenAI-compatible API and web UI on one machine,
composed from each room's settings (`ServeSettings` holds only what composing adds: the
ports and whether the UI runs).

The model worker runs in a child process (as vLLM keeps its engine apart from its API
server): decoding and HTTP streaming then do not share one interpreter lock. The child
receives its settings as data, a JSON config file read by `palestra worker --config`. A
worker that crashes after it has served is started again on the same port while the API
and web UI stay up (`core/restarts.py` ends a crash loop); one that fails before it
serves (a bad model) ends `serve` at once.
The internal controller and worker ports default to free ones; every port is bound
before anything starts, so a taken one is a one-line error naming its option.

`--register-api-endpoint-file` (FastChat's api_endpoint.json) reaches both sides with one
meaning: the worker serves the file's hosted models through the OpenAI-compatible API
(beside the local model), and the web UI calls the same providers directly with the same
settings (its battles, recommended configs and outage list are its own).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
import tempfile
from pathlib import Path
from typing import Any

from palestra.arena.settings import CleaningOptions, RatingOptions
from palestra.backends.options import ModelSettings
from palestra.core.restarts import Deaths, exit_status
from palestra.core.settings import Settings, option
from palestra.serve.cluster import TOKEN_VARIABLE, ClusterSettings
from palestra.serve.controller.settings import ControllerSettings
from palestra.serve.openai.settings import ApiSettings
from palestra.serve.settings import API_PORT, WEBUI_PORT
from palestra.serve.worker.settings import WorkerSettings
from palestra.webui.settings import WebUISettings

# What `serve` sets itself in the rooms it composes (so they are not `serve` options).
WORKER_WIRED = frozenset({"worker_address", "controller_address", "no_register", "endpoint_file"})
API_WIRED = frozenset({"controller"})
WEBUI_WIRED = frozenset({"api_base", "api_key"})
# TLS is for traffic between machines; `serve` runs on one (its token still applies).
CLUSTER_WIRED = frozenset({"ssl_certfile", "ssl_keyfile", "ssl_ca_certs"})
# How a worker that was stopped (not one that crashed) ends: it is not started again.
STOPPED = frozenset({0, -signal.SIGINT, -signal.SIGTERM})


class ServeSettings(Settings):
    """The ports of the servers `palestra serve` runs together."""

    host: str = option("127.0.0.1", "Interface every server listens on.")
    port: int = option(API_PORT, "The OpenAI-compatible API's port.")
    controller_port: int = option(0, "The controller's port; 0: any free port.")
    worker_port: int = option(0, "The model worker's port; 0: any free port.")
    webui_port: int = option(WEBUI_PORT, "The web UI's port.")
    no_webui: bool = option(False, "Do not serve the web UI.")


def run_serve(
    serve: ServeSettings,
    controller: ControllerSettings,
    worker: WorkerSettings,
    model: ModelSettings,
    backend_options: dict[str, Any],
    api: ApiSettings,
    webui: WebUISettings,
    leaderboard: tuple[RatingOptions, CleaningOptions],
    log_level: str,
    cluster: ClusterSettings | None = None,
) -> int:
    """Start everything; returns the exit status (0 after Ctrl-C). With a cluster token,
    every server takes it (the worker child through its environment) and the internal
    ports answer only its holders."""
    import httpx

    from palestra.serve.controller.app import build_controller_app
    from palestra.serve.openai.app import build_api_app
    from palestra.serve.runner import Endpoint, bound_port, reserve, run_servers

    host = serve.host
    api_sock = reserve(host, serve.port, "--port")
    controller_sock = reserve(host, serve.controller_port, "--controller-port")
    webui_sock = None if serve.no_webui else reserve(host, serve.webui_port, "--webui-port")
    worker_probe = reserve(host, serve.worker_port, "--worker-port")
    worker_port = bound_port(worker_probe)
    worker_probe.close()  # the child binds it again at once
    controller_url = f"http://{host}:{bound_port(controller_sock)}"
    worker_url = f"http://{host}:{worker_port}"
    api_url = f"http://{host}:{bound_port(api_sock)}/v1"
    webui_url = f"http://{host}:{bound_port(webui_sock)}" if webui_sock else None

    config = {
        "host": host,
        "port": worker_port,
        "controller_address": controller_url,
        "log_level": log_level,
        **worker.model_dump(mode="json", exclude=set(WORKER_WIRED)),
        **model.model_dump(mode="json"),
        **backend_options,
    }
    if webui.endpoint_file:  # hosted models: the API serves them too, through the worker
        config["register_api_endpoint_file"] = str(webui.endpoint_file)
        if not model.model_path and model.backend == "hf":
            from palestra.models.inspect import BUNDLED_MODEL

            config["model_path"] = [BUNDLED_MODEL]  # a worker given only a file serves only it
    folder = tempfile.TemporaryDirectory(prefix="palestra-serve-")
    config_file = Path(folder.name) / "worker.json"
    config_file.write_text(json.dumps(config, indent=1))
    command = [sys.executable, "-m", "palestra.cli.main", "worker", "--config", str(config_file)]

    cluster = cluster or ClusterSettings()
    token = cluster.token
    child_env = {**os.environ, TOKEN_VARIABLE: token} if token else None

    async def announce(process: asyncio.subprocess.Process) -> bool:
        """Print the banner once the worker has registered (False: it exited first)."""
        async with httpx.AsyncClient(timeout=2, **cluster.client_options()) as client:
            while process.returncode is None:
                mine = await _own_models(client, worker_url, controller_url)
                if mine:
                    ui = f"  web UI      {webui_url}\n" if webui_url else ""
                    print(
                        f"palestra serve: {', '.join(mine)}\n"
                        f"  OpenAI API  {api_url}\n{ui}  controller  {controller_url}\n"
                        f"  worker      {worker_url}\nCtrl-C stops everything.",
                        flush=True,
                    )
                    return True
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(process.wait(), 0.25)
        return False

    async def run_worker() -> int:
        """Start the worker and announce it once it has registered; start it again if it
        dies after that (a crash in native code, the out-of-memory killer), while the API
        and the web UI stay up; outlive it never."""
        deaths = Deaths()
        announced = False
        while True:
            process = await asyncio.create_subprocess_exec(
                *command,
                stdout=asyncio.subprocess.DEVNULL,
                preexec_fn=_die_with_parent,
                env=child_env,
            )
            try:
                announced = announced or await announce(process)
                code = await process.wait()
            finally:
                if process.returncode is None:
                    process.send_signal(signal.SIGINT)
                    try:
                        await asyncio.wait_for(process.wait(), 20)
                    except TimeoutError:
                        process.kill()
            how = exit_status(code)
            if not announced or code in STOPPED:  # it never served, or it was stopped
                return code or 1  # the worker never ends on its own
            if deaths.too_many():
                print(
                    f"palestra serve: the worker stopped ({how}) {deaths.count} times in "
                    f"{deaths.window_minutes:g} minutes; stopping (see its messages above)",
                    file=sys.stderr,
                    flush=True,
                )
                return code or 1
            print(
                f"palestra serve: the worker stopped ({how}); starting it again",
                file=sys.stderr,
                flush=True,
            )

    api_settings = api.model_copy(update={"controller": controller_url})
    controller_app = build_controller_app(controller, cluster)
    # The API asks the controller's table in this process directly, not over loopback HTTP.
    api_app = build_api_app(api_settings, cluster, controller_app.state.table)
    endpoints = [
        Endpoint("controller", controller_app, host, 0, sock=controller_sock),
        Endpoint("api", api_app, host, 0, sock=api_sock),
    ]
    if webui_sock is not None:
        from palestra.webui.settings import build_webui_app

        keys = api.api_keys
        ui = webui.model_copy(update={"api_base": api_url, "api_key": keys[0] if keys else None})
        app = build_webui_app(ui, *leaderboard)
        endpoints.append(Endpoint("webui", app, host, 0, sock=webui_sock))
    try:
        return run_servers(endpoints, supervise=run_worker)
    finally:
        folder.cleanup()


def _die_with_parent() -> None:
    """In the worker child (Linux): exit when `palestra serve` dies, even by SIGKILL."""
    import ctypes

    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


async def _own_models(client: Any, worker_url: str, controller_url: str) -> list[str]:
    """The models of serve's own worker once the controller lists them (none before): the
    banner names those, never another worker's that registered with the same controller."""
    import httpx

    try:
        status = (await client.get(f"{worker_url}/status")).json()
        listed = set((await client.get(f"{controller_url}/models")).json().get("models") or [])
        mine = [str(model["name"]) for model in status.get("models") or []]
    except (httpx.HTTPError, ValueError, KeyError, TypeError, AttributeError):
        return []
    return mine if mine and set(mine) <= listed else []
