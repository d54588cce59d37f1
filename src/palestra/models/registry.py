"""Resolution of a model name, path or config to a `ModelSpec`.

Deterministic and order-free: an exact id or alias wins; otherwise the family whose name
pattern matches the longest part of the name (among those compatible with the config's
architecture); otherwise the family declaring the config's architecture, then model_type.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from palestra.core.errors import ModelNotFoundError
from palestra.models.spec import ModelSpec


class ModelRegistry:
    def __init__(self, specs: Iterable[ModelSpec]):
        self._specs: dict[str, ModelSpec] = {}
        for spec in specs:
            self.add(spec)

    def add(self, spec: ModelSpec) -> None:
        """Register a family (plugins' duplicates are settled in `palestra.plugins`)."""
        self._specs[spec.id] = spec

    def __iter__(self) -> Any:
        return iter(sorted(self._specs.values(), key=lambda s: s.id))

    def __len__(self) -> int:
        return len(self._specs)

    def get(self, family_id: str) -> ModelSpec:
        key = family_id.lower()
        for spec in self._specs.values():
            if key == spec.id.lower() or key in (a.lower() for a in spec.aliases):
                return spec
        raise ModelNotFoundError(
            f"unknown model family {family_id!r}; known: {', '.join(sorted(self._specs))}"
        )

    def resolve(self, name: str = "", config: dict[str, Any] | None = None) -> ModelSpec | None:
        """The family for a model called `name` (folder or hub name) with HF `config`."""
        config = config or {}
        basename = name.rstrip("/").rsplit("/", 1)[-1]
        try:
            return self.get(basename)
        except ModelNotFoundError:
            pass
        architectures = set(config.get("architectures") or ())
        model_type = config.get("model_type")

        def compatible(spec: ModelSpec) -> bool:
            return not (
                architectures and spec.architectures and not architectures & set(spec.architectures)
            )

        scored = [(spec.name_match_length(basename), spec) for spec in self._specs.values()]
        named = [(score, spec) for score, spec in scored if score and compatible(spec)]
        if named:
            best = max(score for score, _ in named)
            winners = sorted((s for score, s in named if score == best), key=lambda s: s.id)
            return winners[0]
        by_arch = [
            s
            for s in self._specs.values()
            if architectures & set(s.architectures) and not s.name_patterns
        ]
        by_arch = by_arch or [
            s for s in self._specs.values() if architectures & set(s.architectures)
        ]
        if by_arch:
            return sorted(by_arch, key=lambda s: (bool(s.name_patterns), s.id))[0]
        by_type = [s for s in self._specs.values() if model_type and model_type in s.model_types]
        if by_type:
            return sorted(by_type, key=lambda s: (bool(s.name_patterns), s.id))[0]
        return None
