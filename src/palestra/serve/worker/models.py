"""What a worker hosts: served model names mapped to a backend (and, for PEFT adapters
sharing one base, the adapter to select), with one admission queue per backend."""

from __future__ import annotations

from dataclasses import dataclass, field

from palestra.backends.base import Backend
from palestra.core.errors import ModelNotFoundError
from palestra.serve.worker.admission import Admission


@dataclass
class ServedModel:
    name: str
    backend: Backend
    admission: Admission
    adapter: str | None = None


@dataclass
class ModelTable:
    models: dict[str, ServedModel] = field(default_factory=dict)

    def add(self, model: ServedModel) -> None:
        if model.name in self.models:
            raise ValueError(f"model name {model.name!r} is served twice; give --model-names")
        self.models[model.name] = model

    def get(self, name: str) -> ServedModel:
        if name not in self.models:
            raise ModelNotFoundError(
                f"model {name!r} is not served by this worker; served: "
                f"{', '.join(sorted(self.models))}",
                param="model",
                code="model_not_found",
            )
        return self.models[name]

    def admissions(self) -> list[Admission]:
        unique: dict[int, Admission] = {}
        for model in self.models.values():
            unique[id(model.admission)] = model.admission
        return list(unique.values())

    @property
    def queue_length(self) -> int:
        return sum(a.queue_length for a in self.admissions())

    @property
    def capacity(self) -> int:
        return sum(a.capacity for a in self.admissions())
