"""`WorkerSettings`: how a worker reaches its controller and admits requests; and
`build_model_table`, which loads the models a worker serves (its `ModelSettings`, with
the chosen backend's options) and its API-provider models into a `ModelTable`."""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path

from pydantic import field_validator

from palestra.backends.base import Backend
from palestra.backends.options import ModelSettings
from palestra.core.errors import InvalidRequestError
from palestra.core.settings import Settings, option
from palestra.core.types import Pacing
from palestra.serve.settings import DEFAULT_CONTROLLER
from palestra.serve.worker.keep_alive import parse_duration
from palestra.serve.worker.models import ModelTable


class WorkerSettings(Settings):
    """A worker's place in the cluster and its admission limits."""

    worker_address: str | None = option(
        None, "URL the controller calls back (for other machines); default http://HOST:PORT."
    )
    controller_address: str = option(DEFAULT_CONTROLLER, "The controller's URL.")
    no_register: bool = option(False, "Run standalone: do not register with a controller.")
    heartbeat_interval: float = option(10.0, "Seconds between heartbeats to the controller.")
    limit_concurrency: int = option(
        0, "Requests running at once per model; 0: what the backend decodes together."
    )
    max_queue: int = option(
        512, "Requests waiting per model (as Ollama's queue); past it, 429 with Retry-After."
    )
    stream_interval: int = option(
        1,
        "Tokens a streamed frame holds at least (vLLM's --stream-interval): the first text "
        "and the end go out at once; more per frame cuts the per-frame work on every hop.",
        minimum=1,
    )
    stream_interval_ms: float = option(
        20.0,
        "Milliseconds a streamed frame of the transformers and llama.cpp engines gathers "
        "tokens for (0: a frame per token): a model faster than this sends fewer, fuller "
        "frames, a slower one a token per frame; the first text and the end go out at once.",
        minimum=0,
    )
    keep_alive: str = option(
        "-1",
        "Unload a local model idle this long and load it again on the next request: "
        "seconds, or 90s, 5m, 1h; -1: keep it loaded.",
    )

    @property
    def pacing(self) -> Pacing:
        """How the worker's streams gather tokens into frames."""
        return Pacing(self.stream_interval, self.stream_interval_ms / 1000)

    @field_validator("keep_alive")
    @classmethod
    def _duration(cls, value: str) -> str:
        parse_duration(value)
        return value

    endpoint_file: Path | None = option(
        None,
        "Also serve these API provider models (FastChat's JSON); alone, serve only them.",
        flag="--register-api-endpoint-file",
    )


def build_model_table(
    worker: WorkerSettings, model: ModelSettings, backend_options: Settings
) -> ModelTable:
    """Load every model (adapters go on the first one) and the endpoint file's models."""
    from palestra.plugins import create_backend
    from palestra.serve.worker.admission import Admission
    from palestra.serve.worker.models import ServedModel

    table = ModelTable()
    paths: list[str | None] = [model.local_path(i) for i in range(len(model.model_path))]
    if not paths and not worker.endpoint_file:
        paths = [None]  # the bundled model
    names = model.model_names
    if names and len(names) != len(paths):
        raise InvalidRequestError(
            f"--model-names has {len(names)} names for {len(paths)} "
            "--model-path values; give one name per path"
        )
    adapters = getattr(backend_options, "adapters", {})
    backend_options = backend_options.serving()
    for index, path in enumerate(paths):
        options = backend_options
        if index > 0 and adapters:  # adapters load on the first model only
            options = backend_options.model_copy(update={"adapter": []})
        backend = _loaded(
            functools.partial(
                create_backend,
                model.backend,
                path,
                model_name=names[index] if names else None,
                conv_template=model.conv_template,
                options=options,
            ),
            parse_duration(worker.keep_alive),
        )
        admission = Admission(worker.limit_concurrency or backend.capacity, worker.max_queue)
        table.add(ServedModel(backend.model_name, backend, admission))
        if index == 0:
            for adapter in adapters:
                table.add(ServedModel(adapter, backend, admission, adapter=adapter))
    if worker.endpoint_file:
        from palestra.backends.remote import load_endpoint_file, remote_backend

        for endpoint in load_endpoint_file(worker.endpoint_file):
            backend = remote_backend(endpoint)
            limit = worker.limit_concurrency or backend.capacity
            table.add(ServedModel(endpoint.name, backend, Admission(limit, worker.max_queue)))
    return table


def _loaded(load: Callable[[], Backend], keep_alive: float | None) -> Backend:
    from palestra.serve.worker.keep_alive import KeepAlive

    return load() if keep_alive is None else KeepAlive(load, keep_alive)


def faster_engine_hints(model: ModelSettings, backend: str, device: str) -> list[str]:
    """One line per model folder that holds a GGUF file while the transformers backend
    serves it on a CPU, where llama.cpp is the faster engine (benchmarks/README.md)."""
    if backend != "hf" or device not in ("cpu", "auto"):
        return []
    if device == "auto":
        import torch

        if torch.cuda.is_available() or torch.backends.mps.is_available():
            return []
    hints = []
    for index in range(len(model.model_path)):
        folder = model.local_path(index)
        found = sorted(Path(folder).glob("*.gguf")) if folder and Path(folder).is_dir() else []
        if found:
            hints.append(
                f"note: {found[0]} is a GGUF of this model; on a CPU, --backend llamacpp "
                f"--model-path {found[0]} serves it faster (2-5x in benchmarks/README.md)"
            )
    return hints
