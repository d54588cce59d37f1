"""Constrained decoding for structured output (`response_format` json_object/json_schema,
forced tool calls, vLLM's regex / choice / grammar) through llguidance: a JSON schema, a
regular expression or a Lark grammar becomes an llguidance grammar, and at each step the
tokens that would break it are masked out before sampling.

Compact JSON (no free whitespace): a weak model can otherwise spend its whole budget on
newlines. Grammars are validated once per schema and cached per backend.
"""

from __future__ import annotations

import importlib.util
import json
from functools import cached_property, lru_cache
from typing import Any

import torch

from palestra.core.errors import InvalidRequestError, UnsupportedError

ANY_JSON_OBJECT = json.dumps({"type": "object"})


def _require_llguidance() -> None:
    if importlib.util.find_spec("llguidance") is None:
        raise UnsupportedError(
            "structured output needs llguidance: pip install 'palestra[structured]'"
        )


class GrammarFactory:
    """Per tokenizer: turns JSON schema text into fresh per-request constraints. It needs
    llguidance from the first grammar on, not before."""

    def __init__(self, tokenizer: Any, vocab_size: int, eos_token_id: int | None):
        self._tokenizer = tokenizer
        self._vocab_size = vocab_size
        self._eos_token_id = eos_token_id
        self.grammar = lru_cache(maxsize=128)(self._grammar)

    @cached_property
    def _lltokenizer(self) -> Any:
        _require_llguidance()
        import llguidance.hf

        return llguidance.hf.from_tokenizer(
            self._tokenizer, n_vocab=self._vocab_size, eos_token=self._eos_token_id
        )

    def _grammar(self, schema: str, kind: str = "json") -> str:
        import llguidance

        what = {"json": "JSON schema", "regex": "regex", "grammar": "grammar"}[kind]
        param = "response_format" if kind == "json" else "structured_outputs"
        try:
            if kind == "json":
                json.loads(schema)
                grammar = llguidance.LLMatcher.grammar_from_json_schema(
                    schema, defaults={"whitespace_flexible": False}
                )
            elif kind == "regex":
                grammar = llguidance.LLMatcher.grammar_from_regex(schema)
            else:
                grammar = llguidance.LLMatcher.grammar_from_lark(schema)
        except (ValueError, TypeError) as exc:
            raise InvalidRequestError(f"invalid {what}: {exc}", param=param) from exc
        problem = llguidance.LLMatcher.validate_grammar(grammar, self._lltokenizer)
        if problem:
            raise InvalidRequestError(f"unsupported {what}: {problem}", param=param)
        return str(grammar)

    def constraint(self, schema: str, kind: str = "json") -> JsonConstraint:
        return JsonConstraint(self._lltokenizer, self.grammar(schema, kind))


class JsonConstraint:
    """One request's grammar state."""

    def __init__(self, lltokenizer: Any, grammar: str):
        import llguidance
        import llguidance.torch

        self._matcher = llguidance.LLMatcher(lltokenizer, grammar)
        self._mask = llguidance.torch.allocate_token_bitmask(1, lltokenizer.vocab_size)

    def mask(self, logits: torch.Tensor) -> None:
        """Set the logits of forbidden tokens to -inf, in place (one row of float32)."""
        import llguidance.torch

        llguidance.torch.fill_next_token_bitmask(self._matcher, self._mask, 0)
        row = logits.view(1, -1)
        llguidance.torch.apply_token_bitmask_inplace(row, self._mask)

    def accept(self, token: int) -> None:
        if not self._matcher.consume_token(token):
            raise InvalidRequestError(
                f"structured output broke its grammar: {self._matcher.get_error()}"
            )

    @property
    def finished(self) -> bool:
        """The grammar allows nothing more (the JSON value is complete)."""
        return bool(self._matcher.is_stopped())
