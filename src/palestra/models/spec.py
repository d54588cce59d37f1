"""`ModelSpec`: everything Palestra knows about one model family, keyed by a stable id."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal

ModelKind = Literal["chat", "seq2seq", "embedding", "cross-encoder", "vision"]
Pooling = Literal["cls", "mean"]


@dataclass(frozen=True)
class ModelCard:
    """What the UI shows about a model."""

    link: str = ""
    description: str = ""
    license: str = ""


@dataclass(frozen=True)
class ModelSpec:
    """A model family.

    Recognised by, in order of strength: its id or an alias given verbatim; a name pattern
    (regular expression, matched against the folder or hub name; the most specific match
    wins); the Hugging Face config's `architectures`; its `model_type`.
    """

    id: str
    display_name: str
    aliases: tuple[str, ...] = ()
    name_patterns: tuple[str, ...] = ()
    architectures: tuple[str, ...] = ()
    model_types: tuple[str, ...] = ()
    template: str | None = None  # None: the tokenizer's own chat template
    kind: ModelKind = "chat"
    pooling: Pooling | None = None  # embedding models only
    default_backend: str = "hf"
    backend_options: dict[str, object] = field(default_factory=dict, compare=False, hash=False)
    card: ModelCard = field(default_factory=ModelCard)

    def name_match_length(self, name: str) -> int:
        """Length of this family's longest name-pattern match in `name` (0: no match)."""
        best = 0
        for pattern in self.name_patterns:
            for match in re.finditer(pattern, name, flags=re.IGNORECASE):
                best = max(best, len(match.group(0)))
        return best
