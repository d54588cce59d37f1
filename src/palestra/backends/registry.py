"""Backend factories by name (`hf`, `llamacpp`, `vllm`, `scripted`, and whatever plugins
add), each with its options class, and `create_backend`.

This module does not know where factories come from: `palestra.plugins` collects them
(built-ins through the same hook as third-party plugins) and hands them to the callers.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from palestra.backends.base import Backend
from palestra.backends.options import HFOptions, LlamaCppOptions, ScriptedOptions, VLLMOptions
from palestra.core.errors import InvalidRequestError
from palestra.core.settings import Settings


@dataclass(frozen=True)
class BackendFactory:
    """`create(model_path, model_name=..., conv_template=..., options=...)` builds one
    model's backend; `options` is the class of the settings it accepts."""

    name: str
    description: str
    create: Callable[..., Backend]
    options: type[Settings] = Settings
    override: bool = False  # a plugin replacing a backend of the same name says so
    # Whether its models run in torch: a worker loads torch (teamless, cpu_threads) and
    # quiets transformers only for these; llama.cpp and test doubles never import either.
    uses_torch: bool = True

    @property
    def id(self) -> str:
        return self.name


def _create_hf(model_path: str | None, options: Any, **names: Any) -> Backend:
    from palestra.backends.hf.backend import HFBackend

    return HFBackend.load(model_path, options=options, **names)


def _create_llamacpp(model_path: str | None, options: Any, **names: Any) -> Backend:
    from palestra.backends.llamacpp.backend import LlamaCppBackend

    return LlamaCppBackend.load(model_path, options=options, **names)


def _create_vllm(model_path: str | None, options: Any, **names: Any) -> Backend:
    from palestra.backends.vllm import VLLMBackend

    return VLLMBackend.load(model_path, options=options, **names)


def _create_scripted(model_path: str | None, options: Any, **names: Any) -> Backend:
    from palestra.backends.scripted import ScriptedBackend

    return ScriptedBackend.from_file(model_path, names.get("model_name"), options=options)


BUILTIN_BACKENDS: tuple[BackendFactory, ...] = (
    BackendFactory("hf", "Hugging Face transformers (CPU, CUDA, MPS)", _create_hf, HFOptions),
    BackendFactory(
        "llamacpp",
        "GGUF models through llama.cpp (llama-cpp-python)",
        _create_llamacpp,
        LlamaCppOptions,
        uses_torch=False,
    ),
    BackendFactory(
        "vllm", "vLLM's AsyncLLM engine on GPUs (pip install vllm)", _create_vllm, VLLMOptions
    ),
    BackendFactory(
        "scripted",
        "canned replies from a JSON file (tests and demos)",
        _create_scripted,
        ScriptedOptions,
        uses_torch=False,
    ),
)


def create_backend(
    factories: Mapping[str, BackendFactory],
    name: str,
    model_path: str | None = None,
    *,
    model_name: str | None = None,
    conv_template: str | None = None,
    options: Settings | Mapping[str, Any] | None = None,
) -> Backend:
    """Build a backend; `options` is the backend's settings (or a mapping of them)."""
    if name not in factories:
        raise InvalidRequestError(
            f"unknown backend {name!r}; available: {', '.join(sorted(factories))}", param="backend"
        )
    factory = factories[name]
    settings = backend_options(factory, options)
    return factory.create(
        model_path, options=settings, model_name=model_name, conv_template=conv_template
    )


def backend_options(
    factory: BackendFactory, options: Settings | Mapping[str, Any] | None
) -> Settings:
    """The backend's own settings; an option it does not have is an error naming those
    it has."""
    if isinstance(options, factory.options):
        return options
    values = dict(options.model_dump() if isinstance(options, Settings) else options or {})
    unknown = sorted(set(values) - set(factory.options.model_fields))
    if unknown:
        offered = ", ".join(sorted(factory.options.model_fields)) or "none"
        raise InvalidRequestError(
            f"backend {factory.name!r} has no option {', '.join(unknown)}; its options: {offered}",
            param="backend",
        )
    try:
        return factory.options(**values)
    except ValueError as exc:
        raise InvalidRequestError(f"backend {factory.name!r}: {exc}", param="backend") from None
