"""Serving commands: `controller`, `worker`, `api`, `serve` (all three on one machine),
`workers` (the controller's table) and `test-message`."""

from __future__ import annotations

import contextlib
import json
import logging
import signal
import sys
from enum import StrEnum
from pathlib import Path
from typing import Any

import typer

DEFAULT_CONTROLLER = "http://127.0.0.1:21001"


class Policy(StrEnum):
    shortest_queue = "shortest_queue"
    lottery = "lottery"


def _logging(level: str) -> None:
    logging.basicConfig(
        level=level.upper(),
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


def build_model_table(
    model_paths: list[str],
    model_names: str | None,
    backend: str,
    conv_template: str | None,
    adapters: list[str],
    limit: int,
    max_queue: int,
    load_options: dict[str, Any],
) -> Any:
    """Load every model (and adapters on the first one) into a worker's model table."""
    from palestra.backends.registry import create_backend
    from palestra.core.errors import InvalidRequestError
    from palestra.serve.worker.admission import Admission
    from palestra.serve.worker.models import ModelTable, ServedModel

    paths = model_paths or [None]  # type: ignore[list-item]
    names = [n.strip() for n in model_names.split(",")] if model_names else []
    if names and len(names) != len(paths):
        raise InvalidRequestError(
            f"--model-names has {len(names)} names for {len(paths)} "
            "--model-path values; give one name per path"
        )
    adapter_map: dict[str, str] = {}
    for spec in adapters:
        name, sep, path = spec.partition("=")
        if not sep or not name or not path:
            raise InvalidRequestError(f"--adapter {spec!r}: expected NAME=PATH")
        adapter_map[name] = path
    table = ModelTable()
    for index, path in enumerate(paths):
        instance = create_backend(
            backend,
            model_path=path,
            conv_template=conv_template,
            model_name=names[index] if names else None,
            adapters=adapter_map if index == 0 else None,
            **load_options,
        )
        admission = Admission(limit, max_queue)
        table.add(ServedModel(instance.model_name, instance, admission))
        if index == 0:
            for adapter in adapter_map:
                table.add(ServedModel(adapter, instance, admission, adapter=adapter))
    return table


def add_api_endpoints(table: Any, endpoint_file: Path, limit: int, max_queue: int) -> None:
    """Serve the models of an API endpoint file through this worker (remote backends)."""
    from palestra.backends.remote import load_endpoint_file, remote_backend
    from palestra.serve.worker.admission import Admission
    from palestra.serve.worker.models import ServedModel

    for endpoint in load_endpoint_file(endpoint_file):
        backend = remote_backend(endpoint)
        table.add(ServedModel(endpoint.name, backend, Admission(limit, max_queue)))


def _die_with_parent() -> None:
    """In the worker child (Linux): exit when `palestra serve` dies, even by SIGKILL."""
    import ctypes

    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def _backend_options(
    backend: str,
    max_batch_size: int,
    parallel: int,
    max_cached_tokens: int = 0,
    prefix_cache_tokens: int = -1,
) -> dict[str, Any]:
    """The concurrency options each built-in backend takes (plugins get none)."""
    if backend == "hf":
        return {
            "max_batch_size": max_batch_size,
            "max_cached_tokens": max_cached_tokens,
            "prefix_cache_tokens": prefix_cache_tokens,
        }
    if backend == "llamacpp":
        return {"parallel": parallel}
    return {}


def controller(
    host: str = typer.Option("127.0.0.1", help="Interface to listen on."),
    port: int = typer.Option(21001),
    expiry: float = typer.Option(
        30.0, help="Seconds without heartbeat before a worker is dropped."
    ),
    policy: Policy = typer.Option(Policy.shortest_queue, "--dispatch-method"),
    log_level: str = typer.Option("info"),
) -> None:
    """Run the controller: tracks workers and picks one per request."""
    from palestra.serve.controller.app import ControllerSettings, build_controller_app
    from palestra.serve.runner import Endpoint, run_servers

    _logging(log_level)
    app = build_controller_app(ControllerSettings(expiry=expiry, policy=policy.value))
    run_servers([Endpoint("controller", app, host, port)], log_level="warning")


def worker(
    model_path: list[str] = typer.Option([], "--model-path", help="Repeatable; default: bundled."),
    model_names: str = typer.Option(None, "--model-names", help="Comma list, one per path."),
    backend: str = typer.Option("hf", "--backend"),
    conv_template: str = typer.Option(None, "--conv-template"),
    adapter: list[str] = typer.Option(
        [], "--adapter", help="NAME=PATH: a PEFT adapter on the first model."
    ),
    host: str = typer.Option("127.0.0.1"),
    port: int = typer.Option(21002),
    worker_address: str = typer.Option(
        None, "--worker-address", help="URL the controller calls back (other machines)."
    ),
    controller_address: str = typer.Option(DEFAULT_CONTROLLER, "--controller-address"),
    no_register: bool = typer.Option(False, "--no-register"),
    heartbeat_interval: float = typer.Option(10.0, "--heartbeat-interval"),
    max_batch_size: int = typer.Option(
        16, "--max-batch-size", help="Sequences decoded together (continuous batching)."
    ),
    max_cached_tokens: int = typer.Option(
        0, "--max-cached-tokens", help="Key/value slots in a batch; 0: batch size x context."
    ),
    prefix_cache_tokens: int = typer.Option(
        -1,
        "--prefix-cache-tokens",
        help="Prompt key/values kept for reuse; -1: as --max-cached-tokens, 0: off.",
    ),
    parallel: int = typer.Option(
        2, "--parallel", help="llama.cpp backend: contexts decoding side by side."
    ),
    limit_concurrency: int = typer.Option(
        0, "--limit-concurrency", help="Requests running at once; 0: --max-batch-size."
    ),
    max_queue: int = typer.Option(32, "--max-queue", help="Requests waiting; past it, 429."),
    device: str = typer.Option("auto"),
    dtype: str = typer.Option("auto"),
    load_8bit: bool = typer.Option(False, "--load-8bit"),
    num_gpus: int = typer.Option(1, "--num-gpus"),
    max_gpu_memory: str = typer.Option(None, "--max-gpu-memory"),
    endpoint_file: Path = typer.Option(
        None,
        "--register-api-endpoint-file",
        help="Also serve these API models (FastChat's JSON); alone, serve only them.",
    ),
    log_level: str = typer.Option("info"),
) -> None:
    """Run a worker hosting one or more models behind any backend."""
    from palestra.serve.runner import Endpoint, run_servers
    from palestra.serve.worker.app import WorkerSettings, build_worker_app

    _logging(log_level)
    from palestra.backends.hf.loading import quiet_transformers

    quiet_transformers()
    limit = limit_concurrency or max_batch_size
    if endpoint_file and not model_path:
        from palestra.serve.worker.models import ModelTable

        table = ModelTable()
    else:
        table = build_model_table(
            model_path,
            model_names,
            backend,
            conv_template,
            adapter,
            limit,
            max_queue,
            {
                "device": device,
                "dtype": dtype,
                "load_8bit": load_8bit,
                "num_gpus": num_gpus,
                "max_gpu_memory": max_gpu_memory,
                **_backend_options(
                    backend, max_batch_size, parallel, max_cached_tokens, prefix_cache_tokens
                ),
            },
        )
    if endpoint_file:
        add_api_endpoints(table, endpoint_file, limit, max_queue)
    address = worker_address or f"http://{host}:{port}"
    settings = WorkerSettings(
        address=address,
        controller=None if no_register else controller_address,
        heartbeat_interval=heartbeat_interval,
    )
    run_servers(
        [Endpoint("worker", build_worker_app(settings, table), host, port)],
        on_started=lambda: print(
            f"worker serving {', '.join(table.models)} at {address}", file=sys.stderr, flush=True
        ),
    )


def api(
    host: str = typer.Option("127.0.0.1"),
    port: int = typer.Option(8000),
    controller_address: str = typer.Option(DEFAULT_CONTROLLER, "--controller-address"),
    api_keys: str = typer.Option(None, "--api-keys", help="Comma list of accepted keys."),
    allowed_origins: str = typer.Option(None, "--allowed-origins", help="Comma list (CORS)."),
    allow_credentials: bool = typer.Option(False, "--allow-credentials"),
    log_level: str = typer.Option("info"),
) -> None:
    """Run the OpenAI-compatible API server."""
    from palestra.serve.openai.app import ApiSettings, build_api_app
    from palestra.serve.runner import Endpoint, run_servers

    _logging(log_level)
    settings = ApiSettings(
        controller=controller_address,
        api_keys=_split(api_keys),
        allowed_origins=_split(allowed_origins),
        allow_credentials=allow_credentials,
    )
    run_servers([Endpoint("api", build_api_app(settings), host, port)])


def serve(
    model_path: list[str] = typer.Option([], "--model-path", help="Repeatable; default: bundled."),
    model_names: str = typer.Option(None, "--model-names"),
    conv_template: str = typer.Option(None, "--conv-template"),
    host: str = typer.Option("127.0.0.1"),
    port: int = typer.Option(8000, help="API server port."),
    controller_port: int = typer.Option(21001, "--controller-port"),
    worker_port: int = typer.Option(21002, "--worker-port"),
    api_keys: str = typer.Option(None, "--api-keys"),
    device: str = typer.Option("auto"),
    backend: str = typer.Option("hf", "--backend", help="hf, llamacpp, or a plugin's."),
    max_batch_size: int = typer.Option(
        16, "--max-batch-size", help="Sequences decoded together (continuous batching)."
    ),
    parallel: int = typer.Option(
        2, "--parallel", help="llama.cpp backend: contexts decoding side by side."
    ),
    max_queue: int = typer.Option(32, "--max-queue", help="Requests waiting; past it, 429."),
    webui_port: int = typer.Option(7860, "--webui-port", help="Web UI port."),
    no_webui: bool = typer.Option(False, "--no-webui", help="Do not serve the web UI."),
    store: str = typer.Option(
        "palestra-arena.db", "--store", help="Web UI votes: SQLite file or database URL."
    ),
    endpoint_file: Path = typer.Option(
        None, "--register-api-endpoint-file", help="API models for the UI (FastChat's JSON)."
    ),
    arena_config: Path = typer.Option(None, "--arena-config", help="Battle sampling (JSON)."),
    moderation: str = typer.Option(None, "--moderation", help="'keyword' or module:factory."),
    moderation_words: Path = typer.Option(None, "--moderation-words"),
    rate_limit: str = typer.Option(None, "--rate-limit", help="UI messages per user: N/SEC."),
    log_level: str = typer.Option("warning"),
) -> None:
    """Controller + worker + OpenAI-compatible API + web UI on this machine, in one command.

    The model worker runs in a child process (as vLLM keeps its engine apart from its API
    server): decoding and HTTP streaming then do not share one interpreter lock."""
    import asyncio

    import httpx

    from palestra.serve.controller.app import ControllerSettings, build_controller_app
    from palestra.serve.openai.app import ApiSettings, build_api_app
    from palestra.serve.runner import Endpoint, run_servers

    _logging(log_level)
    controller_url = f"http://{host}:{controller_port}"
    worker_url = f"http://{host}:{worker_port}"
    api_url = f"http://{host}:{port}/v1"
    worker_command = [
        sys.executable, "-m", "palestra.cli.main", "worker",
        "--host", host, "--port", str(worker_port), "--controller-address", controller_url,
        "--heartbeat-interval", "5", "--backend", backend, "--device", device,
        "--max-batch-size", str(max_batch_size), "--parallel", str(parallel),
        "--max-queue", str(max_queue), "--log-level", log_level,
    ]  # fmt: skip
    for path in model_path:
        worker_command += ["--model-path", path]
    if model_names:
        worker_command += ["--model-names", model_names]
    if conv_template:
        worker_command += ["--conv-template", conv_template]

    async def run_worker() -> int:
        """Start the worker, announce once it has registered, and outlive it never."""
        process = await asyncio.create_subprocess_exec(
            *worker_command, stdout=asyncio.subprocess.DEVNULL, preexec_fn=_die_with_parent
        )
        try:
            async with httpx.AsyncClient(timeout=2) as client:
                while process.returncode is None:
                    try:
                        served = (await client.get(f"{controller_url}/models")).json()
                    except (httpx.HTTPError, ValueError):
                        served = {}
                    if served.get("models"):
                        ui = "" if no_webui else f"  web UI      http://{host}:{webui_port}\n"
                        print(
                            f"palestra serve: {', '.join(served['models'])}\n"
                            f"  OpenAI API  {api_url}\n{ui}  controller  {controller_url}\n"
                            f"  worker      {worker_url}\nCtrl-C stops everything.",
                            flush=True,
                        )
                        break
                    with contextlib.suppress(asyncio.TimeoutError):
                        await asyncio.wait_for(process.wait(), 0.25)
            return await process.wait() or 1  # the worker never ends on its own
        finally:
            if process.returncode is None:
                process.send_signal(signal.SIGINT)
                try:
                    await asyncio.wait_for(process.wait(), 20)
                except TimeoutError:
                    process.kill()

    api_app = build_api_app(ApiSettings(controller=controller_url, api_keys=_split(api_keys)))
    endpoints = [
        Endpoint("controller", build_controller_app(ControllerSettings()), host, controller_port),
        Endpoint("api", api_app, host, port),
    ]
    if not no_webui:
        from palestra.cli.webui import WebUIOptions, webui_app

        keys = _split(api_keys)
        options = WebUIOptions(
            api_url, keys[0] if keys else None, endpoint_file, store, arena_config,
            moderation, moderation_words, rate_limit=rate_limit,
        )  # fmt: skip
        endpoints.append(Endpoint("webui", webui_app(options), host, webui_port))
    status = run_servers(endpoints, supervise=run_worker)
    if status:
        raise typer.Exit(status)


def workers(
    controller_address: str = typer.Option(DEFAULT_CONTROLLER, "--controller-address"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Show the controller's worker table."""
    import httpx

    from palestra.core.errors import NoWorkerError

    try:
        rows = httpx.get(f"{controller_address}/workers", timeout=5).json()
    except httpx.HTTPError as exc:
        raise NoWorkerError(f"controller {controller_address} is unreachable: {exc}") from exc
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
        upstream = Upstream(controller_address)
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


def _split(value: str | None) -> tuple[str, ...]:
    return tuple(v.strip() for v in value.split(",") if v.strip()) if value else ()
