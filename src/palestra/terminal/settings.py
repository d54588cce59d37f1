"""`ChatSettings`: the terminal chat's own options (system message, sampling, display),
next to the model and backend options every model-loading command shares."""

from __future__ import annotations

from typing import Literal

from palestra.core.settings import Settings, option
from palestra.core.types import SamplingParams


class ChatSettings(Settings):
    """How `palestra chat` samples and shows the conversation."""

    system: str | None = option(None, "System message.")
    temperature: float = option(0.7, "0 means greedy decoding.")
    top_p: float = option(1.0, "Nucleus sampling mass.")
    top_k: int = option(0, "0 disables top-k.")
    repetition_penalty: float = option(1.0, "Above 1 discourages repeats.")
    max_new_tokens: int = option(512, "Longest reply, in tokens.")
    seed: int | None = option(None, "Random seed, for repeatable sampling.")
    style: Literal["simple", "rich"] = option("simple", "simple text, or rich (markdown).")
    multiline: bool = option(False, "Multi-line input; Esc+Enter sends.")
    no_history: bool = option(False, "Forget earlier turns (each message stands alone).")
    debug: bool = option(False, "Print the exact prompt before each reply.")

    def sampling(self) -> SamplingParams:
        return SamplingParams(
            temperature=self.temperature,
            top_p=self.top_p,
            top_k=self.top_k,
            repetition_penalty=self.repetition_penalty,
            max_tokens=self.max_new_tokens,
            seed=self.seed,
        )
