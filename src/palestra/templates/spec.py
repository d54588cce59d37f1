"""`ChatTemplate`: a Jinja chat template plus what generation needs to know about it
(stop strings, stop tokens, default special tokens). It does not know where it came from
beyond a `source` note, nor how to pick itself for a model (see `resolve.py`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class ChatTemplate:
    """A chat template in the same language as Hugging Face's `chat_template` (Jinja).

    `stop_strings` end generation and are never shown; `stop_tokens` are token strings
    resolved to ids with the model's tokenizer; `stop_token_ids` are ids known for the
    family's official tokenizer. `bos_token` / `eos_token` are defaults used when rendering
    without a tokenizer (a tokenizer's own special tokens win).
    """

    name: str
    jinja: str
    stop_strings: tuple[str, ...] = ()
    stop_tokens: tuple[str, ...] = ()
    stop_token_ids: tuple[int, ...] = ()
    bos_token: str = ""
    eos_token: str = ""
    default_system: str = ""
    description: str = ""
    source: str = ""
    extra: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    @property
    def end_markers(self) -> tuple[str, ...]:
        """Strings that end an assistant turn, longest first."""
        markers = {m for m in (*self.stop_strings, *self.stop_tokens, self.eos_token) if m.strip()}
        return tuple(sorted(markers, key=len, reverse=True))

    def with_special_tokens(self, bos_token: str | None, eos_token: str | None) -> ChatTemplate:
        """The same template with a tokenizer's own special tokens."""
        from dataclasses import replace

        return replace(
            self,
            bos_token=bos_token if bos_token is not None else self.bos_token,
            eos_token=eos_token if eos_token is not None else self.eos_token,
        )
