"""`ModelFacts`: what the transformers backend's front (templates, tokens, checks, health)
knows of the loaded weights, as plain data, so that an engine process holding the weights
can send it to the worker that serves them."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # loading imports torch, which an engine process imports on its terms
    from palestra.backends.hf.loading import LoadedModel


@dataclass(frozen=True)
class ModelFacts:
    kind: str  # ModelInfo.kind: chat, vision, seq2seq, embedding, cross-encoder
    context_length: int
    eos_ids: tuple[int, ...]  # the model's generation config's end-of-sequence ids
    vocab_size: int
    device: str
    dtype: str
    adapters: tuple[str, ...]
    # Loading an adapter folder itself means "serve that adapter": requests that name no
    # adapter get it (other adapters and the bare base stay selectable by name).
    default_adapter: str | None

    @classmethod
    def of(cls, loaded: LoadedModel) -> ModelFacts:
        model, tokenizer, info = loaded.model, loaded.tokenizer, loaded.info
        eos = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
        return cls(
            kind=info.kind,
            context_length=declared_context(model, tokenizer),
            eos_ids=tuple(eos if isinstance(eos, list) else [eos] if eos is not None else []),
            vocab_size=int(getattr(model.config, "vocab_size", len(tokenizer))),
            device=str(loaded.device),
            dtype=str(model.dtype).replace("torch.", ""),
            adapters=tuple(loaded.adapters),
            default_adapter=Path(info.path).name if info.adapter_base else None,
        )


def declared_context(model: Any, tokenizer: Any) -> int:
    """The model config's context length, else the tokenizer's limit, else 2048."""
    from palestra.models.inspect import context_length

    declared = context_length(model.config.to_dict())
    if declared:
        return declared
    limit = getattr(tokenizer, "model_max_length", 0)
    return limit if 0 < limit < 1_000_000 else 2048
