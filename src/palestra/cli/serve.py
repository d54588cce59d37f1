"""Serving commands: `controller`, `worker`, `api`, `serve` (all of them on one machine),
generated from the rooms' settings classes; `workers` (the controller's table) and
`test-message`."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable

import typer

from palestra.arena.settings import CleaningOptions, RatingOptions
from palestra.backends.options import ModelSettings
from palestra.cli.options import Parsed, Section, settings_command
from palestra.cli.sections import backend_sections, chosen_backend_options
from palestra.serve.cluster import TOKEN_VARIABLE, ClusterSettings, open_warning
from palestra.serve.controller.settings import ControllerSettings
from palestra.serve.launcher import (
    API_WIRED,
    CLUSTER_WIRED,
    WEBUI_WIRED,
    WORKER_WIRED,
    ServeSettings,
)
from palestra.serve.openai.settings import ApiSettings
from palestra.serve.settings import (
    API_PORT,
    CONTROLLER_PORT,
    DEFAULT_CONTROLLER,
    WORKER_PORT,
    LogSettings,
    ServerAddress,
)
from palestra.serve.worker.settings import WorkerSettings, faster_engine_hints
from palestra.webui.settings import WebUISettings


def _listen(port: int) -> Section:
    return Section("listen", ServerAddress, defaults={"port": port})


def _cluster(parsed: Parsed, host: str, what: str) -> ClusterSettings:
    """The cluster's token and TLS settings, checked; a warning when traffic is open."""
    cluster: ClusterSettings = parsed["cluster"]
    cluster.check()
    warning = open_warning(host, cluster.token, what)
    if warning:
        print(f"warning: {warning}", file=sys.stderr)
    return cluster


# ------------------------------------------------------------------ controller
def _run_controller(parsed: Parsed) -> None:
    from palestra.serve.controller.app import build_controller_app
    from palestra.serve.runner import Endpoint, run_servers

    listen: ServerAddress = parsed["listen"]
    parsed["log"].apply()
    cluster = _cluster(parsed, listen.host, "controller")
    app = build_controller_app(parsed["controller"], cluster)
    tls = cluster.server_options()
    run_servers([Endpoint("controller", app, listen.host, listen.port, tls=tls)])


def controller_command() -> Callable[..., None]:
    return settings_command(
        [
            _listen(CONTROLLER_PORT),
            Section("controller", ControllerSettings),
            Section("cluster", ClusterSettings),
            Section("log", LogSettings),
        ],
        _run_controller,
    )


# ---------------------------------------------------------------------- worker
def _run_worker(parsed: Parsed) -> None:
    listen: ServerAddress = parsed["listen"]
    worker: WorkerSettings = parsed["worker"]
    model: ModelSettings = parsed["model"]
    if _runs_torch(model, worker):
        from palestra.backends.hf.cpu_threads import load_torch_teamless

        load_torch_teamless()  # before torch loads: no OpenMP team on the main thread
        from palestra.backends.hf.loading import quiet_transformers

        quiet_transformers()
    from palestra.serve.runner import Endpoint, reserve, run_servers
    from palestra.serve.worker.app import WorkerIdentity, build_worker_app
    from palestra.serve.worker.settings import build_model_table

    parsed["log"].apply()
    cluster = _cluster(parsed, listen.host, "worker")
    options = chosen_backend_options(parsed, model.backend)
    sock = reserve(listen.host, listen.port)  # a taken port fails before the model loads
    table = build_model_table(worker, model, options)
    for hint in faster_engine_hints(model, model.backend, getattr(options, "device", "")):
        print(hint, file=sys.stderr)
    port = sock.getsockname()[1]
    address = worker.worker_address or f"{cluster.scheme}://{listen.host}:{port}"
    identity = WorkerIdentity(
        address=address,
        controller=None if worker.no_register else worker.controller_address,
        heartbeat_interval=worker.heartbeat_interval,
    )
    app = build_worker_app(identity, table, cluster, pacing=worker.pacing)
    run_servers(
        [
            Endpoint(
                "worker", app, listen.host, listen.port, sock=sock, tls=cluster.server_options()
            )
        ],
        on_started=lambda: print(
            f"worker serving {', '.join(table.models)} at {address}", file=sys.stderr, flush=True
        ),
    )


def _runs_torch(model: ModelSettings, worker: WorkerSettings) -> bool:
    """Whether this worker loads a model with a backend that runs in torch (hf, vllm, a
    plugin's unless it says otherwise). A llama.cpp worker, or one serving only an
    endpoint file's API providers, then never imports torch or transformers: about 240 MB
    less memory and two seconds less start-up."""
    from palestra.plugins import backend_factories

    if not model.model_path and worker.endpoint_file:
        return False  # providers only: no local model
    factory = backend_factories().get(model.backend)
    return factory is None or factory.uses_torch  # unknown: create_backend says so later


def worker_command() -> Callable[..., None]:
    sections = [
        _listen(WORKER_PORT),
        Section("worker", WorkerSettings),
        Section("model", ModelSettings),
        *backend_sections(),
        Section("cluster", ClusterSettings),
        Section("log", LogSettings),
    ]
    return settings_command(sections, _run_worker)


# ------------------------------------------------------------------------- api
def _run_api(parsed: Parsed) -> None:
    from palestra.serve.openai.app import build_api_app
    from palestra.serve.runner import Endpoint, run_servers

    listen: ServerAddress = parsed["listen"]
    parsed["log"].apply()
    cluster: ClusterSettings = parsed["cluster"]
    cluster.check()
    app = build_api_app(parsed["api"], cluster)
    run_servers([Endpoint("api", app, listen.host, listen.port, tls=cluster.server_options())])


def api_command() -> Callable[..., None]:
    return settings_command(
        [
            _listen(API_PORT),
            Section("api", ApiSettings),
            Section("cluster", ClusterSettings),
            Section("log", LogSettings),
        ],
        _run_api,
    )


# ----------------------------------------------------------------------- serve
def _run_serve(parsed: Parsed) -> None:
    from palestra.serve.launcher import run_serve

    model: ModelSettings = parsed["model"]
    log: LogSettings = parsed["log"]
    log.apply()
    chosen = chosen_backend_options(parsed, model.backend)
    given = chosen.model_dump(mode="json", exclude_unset=True)  # what the user chose
    status = run_serve(
        parsed["serve"],
        parsed["controller"],
        parsed["worker"],
        model,
        given,
        parsed["api"],
        parsed["webui"],
        (parsed["rating"], parsed["cleaning"]),
        log.log_level,
        _cluster(parsed, parsed["serve"].host, "controller"),
    )
    if status:
        raise SystemExit(status)


def serve_command() -> Callable[..., None]:
    sections = [
        Section("serve", ServeSettings),
        Section("controller", ControllerSettings),
        Section("worker", WorkerSettings, exclude=WORKER_WIRED),
        Section("model", ModelSettings),
        *backend_sections(),
        Section("api", ApiSettings, exclude=API_WIRED),
        Section("webui", WebUISettings, exclude=WEBUI_WIRED),
        Section("rating", RatingOptions),
        Section("cleaning", CleaningOptions),
        Section("cluster", ClusterSettings, exclude=CLUSTER_WIRED),
        Section("log", LogSettings, defaults={"log_level": "warning"}),
    ]
    return settings_command(sections, _run_serve)


# --------------------------------------------------------------- small helpers
def workers(
    controller_address: str = typer.Option(DEFAULT_CONTROLLER, "--controller-address"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Show the controller's worker table."""
    import httpx

    from palestra.core.errors import AuthenticationError, NoWorkerError

    try:
        response = httpx.get(
            f"{controller_address}/workers", timeout=5, **ClusterSettings().client_options()
        )
    except httpx.HTTPError as exc:
        raise NoWorkerError(f"controller {controller_address} is unreachable: {exc}") from exc
    if response.status_code == 401:
        raise AuthenticationError(
            f"controller {controller_address} asks for the cluster token; set {TOKEN_VARIABLE}"
        )
    rows = response.json()
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    typer.echo(f"{'ADDRESS':<28} {'QUEUE':>5} {'CAP':>4} {'BEAT':>6}  MODELS")
    for row in rows:
        typer.echo(
            f"{row['address']:<28} {row['queue_length']:>5} {row['capacity']:>4} "
            f"{row['last_heartbeat_age_s']:>5.1f}s  {', '.join(row['models'])}"
        )


def test_message(
    model: str = typer.Option(..., "--model"),
    message: str = typer.Option("Hello! Who are you?", "--message"),
    controller_address: str = typer.Option(DEFAULT_CONTROLLER, "--controller-address"),
    temperature: float = typer.Option(0.0),
    max_new_tokens: int = typer.Option(64, "--max-new-tokens"),
) -> None:
    """Send one message to a model through the controller and print the streamed reply."""
    import asyncio

    from palestra.serve.openai.upstream import Upstream
    from palestra.serve.wire import GenerateRequest, SamplingWire

    async def run() -> None:
        upstream = Upstream(controller_address, cluster=ClusterSettings())
        try:
            request = GenerateRequest(
                model=model,
                messages=[{"role": "user", "content": message}],
                sampling=SamplingWire(temperature=temperature, max_tokens=max_new_tokens),
            )
            typer.echo(f"user: {message}\nassistant: ", nl=False)
            async for chunk in await upstream.generate(model, request.model_dump()):
                typer.echo(chunk.text, nl=False)
            typer.echo()
        finally:
            await upstream.close()

    asyncio.run(run())
