"""Backend factories by name (`hf`, and whatever plugins add), and `create_backend`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from palestra.backends.base import Backend
from palestra.core.errors import InvalidRequestError


@dataclass(frozen=True)
class BackendFactory:
    name: str
    description: str
    create: Callable[..., Backend]


def _create_hf(**options: Any) -> Backend:
    from palestra.backends.hf.backend import HFBackend

    return HFBackend.load(**options)


def _create_llamacpp(**options: Any) -> Backend:
    from palestra.backends.llamacpp.backend import LlamaCppBackend

    return LlamaCppBackend.load(**options)


def _create_vllm(**options: Any) -> Backend:
    from palestra.backends.vllm import VLLMBackend

    return VLLMBackend.load(**options)


def _create_scripted(**options: Any) -> Backend:
    from palestra.backends.scripted import ScriptedBackend

    return ScriptedBackend.from_file(options.get("model_path"), options.get("model_name"))


BUILTIN_BACKENDS: tuple[BackendFactory, ...] = (
    BackendFactory("hf", "Hugging Face transformers (CPU, CUDA, MPS)", _create_hf),
    BackendFactory(
        "llamacpp", "GGUF models through llama.cpp (llama-cpp-python)", _create_llamacpp
    ),
    BackendFactory("vllm", "vLLM's AsyncLLM engine on GPUs (pip install vllm)", _create_vllm),
    BackendFactory(
        "scripted", "canned replies from a JSON file (tests and demos)", _create_scripted
    ),
)


def available_backends() -> dict[str, BackendFactory]:
    from palestra.plugins import collect

    return {factory.name: factory for factory in collect("backends")}


def create_backend(name: str, **options: Any) -> Backend:
    factories = available_backends()
    if name not in factories:
        raise InvalidRequestError(
            f"unknown backend {name!r}; available: {', '.join(sorted(factories))}", param="backend"
        )
    return factories[name].create(**options)
