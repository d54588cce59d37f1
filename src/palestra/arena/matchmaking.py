"""Drawing the two anonymous models of a battle.

The first model is drawn by its sampling weight (default 1; x `boost_factor` for boosted,
new models; 0 for models in the outage list), the rival by weight among the models it may
face: never itself, never a model of the same `never_paired` group, and, when the first
model has battle targets, its targets get half of the total weight between them (as
Chatbot Arena does, to collect the comparisons that matter). Left and right are random.
The configuration is a JSON file (`--arena-config`):

    {"sampling_weights": {"model-a": 2.0}, "boost_models": ["new-model"], "boost_factor": 5,
     "battle_targets": {"new-model": ["model-a"]}, "outage_models": ["model-b"],
     "never_paired": [["model-c", "model-d"]]}
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from palestra.core.errors import InvalidRequestError, NoWorkerError


@dataclass(frozen=True)
class MatchmakingConfig:
    sampling_weights: dict[str, float] = field(default_factory=dict)
    boost_models: frozenset[str] = frozenset()
    boost_factor: float = 5.0
    battle_targets: dict[str, frozenset[str]] = field(default_factory=dict)
    outage_models: frozenset[str] = frozenset()
    never_paired: tuple[frozenset[str], ...] = ()

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> MatchmakingConfig:
        known = {
            "sampling_weights",
            "boost_models",
            "boost_factor",
            "battle_targets",
            "outage_models",
            "never_paired",
        }
        unknown = sorted(set(data) - known)
        if unknown:
            raise InvalidRequestError(
                f"unknown arena config field(s) {', '.join(unknown)}; known: "
                f"{', '.join(sorted(known))}"
            )
        weights = {str(k): float(v) for k, v in (data.get("sampling_weights") or {}).items()}
        if any(w < 0 for w in weights.values()):
            raise InvalidRequestError("sampling_weights must be >= 0")
        return cls(
            sampling_weights=weights,
            boost_models=frozenset(data.get("boost_models") or ()),
            boost_factor=float(data.get("boost_factor", 5.0)),
            battle_targets={
                str(k): frozenset(v) for k, v in (data.get("battle_targets") or {}).items()
            },
            outage_models=frozenset(data.get("outage_models") or ()),
            never_paired=tuple(frozenset(group) for group in data.get("never_paired") or ()),
        )

    @classmethod
    def from_file(cls, path: str | Path) -> MatchmakingConfig:
        file = Path(path)
        if not file.is_file():
            raise InvalidRequestError(f"arena config {str(file)!r} does not exist")
        try:
            return cls.from_dict(json.loads(file.read_text("utf-8")))
        except json.JSONDecodeError as exc:
            raise InvalidRequestError(f"arena config {str(file)!r} is not JSON: {exc}") from exc

    def weight(self, model: str, boost: bool = True) -> float:
        if model in self.outage_models:
            return 0.0
        weight = self.sampling_weights.get(model, 1.0)
        if boost and model in self.boost_models:
            weight *= self.boost_factor
        return weight

    def may_face(self, first: str, second: str) -> bool:
        if first == second:
            return False
        return not any(first in group and second in group for group in self.never_paired)


def draw_pair(
    models: list[str], config: MatchmakingConfig, rng: random.Random | None = None
) -> tuple[str, str]:
    """(left, right) for a new battle among `models`."""
    rng = rng or random.Random()
    weights = [config.weight(m) for m in models]
    total = sum(weights)
    if total <= 0:
        raise NoWorkerError("no model can battle now (all have weight 0 or are in the outage list)")
    first = rng.choices(models, weights)[0]
    targets = config.battle_targets.get(first, frozenset())
    rivals, rival_weights = [], []
    for model in models:
        weight = config.weight(model, boost=False)
        if weight <= 0 or not config.may_face(first, model):
            continue
        if model in targets:
            weight = 0.5 * total / len(targets)
        rivals.append(model)
        rival_weights.append(weight)
    if not rivals:
        raise NoWorkerError(
            f"no model may battle {first!r} now; the arena needs at least two models that "
            "may face each other"
        )
    rival = rng.choices(rivals, rival_weights)[0]
    return (first, rival) if rng.random() < 0.5 else (rival, first)
