"""Incremental detokenisation: the text a growing list of token ids adds at each step,
in time independent of how long the sequence already is.

Decoding one token at a time is wrong for byte-level and sentencepiece tokenizers (a
character can span tokens, and a leading space depends on the token before), and decoding
the whole sequence at every step costs O(n) per token. As vLLM and TGI do, we decode a
short window: the few tokens before the unread ones, with and without the unread ones, and
emit the difference once it no longer ends in an unfinished character.
"""

from __future__ import annotations

from typing import Any

_WINDOW = 5  # tokens of left context: enough for a tokenizer to place spaces correctly


class IncrementalDetokenizer:
    def __init__(self, tokenizer: Any, skip_special_tokens: bool = True):
        self._tokenizer = tokenizer
        self._skip = skip_special_tokens
        self._ids: list[int] = []
        self._prefix = 0  # start of the context window
        self._read = 0  # tokens already turned into text
        self.text = ""

    def add(self, token_id: int) -> str:
        """Take one token; return the text it completes (possibly empty)."""
        self._ids.append(token_id)
        decode = self._tokenizer.decode
        before = decode(self._ids[self._prefix : self._read], skip_special_tokens=self._skip)
        after = decode(self._ids[self._prefix :], skip_special_tokens=self._skip)
        if after.endswith("\ufffd") or len(after) <= len(before):
            return ""  # an unfinished multi-byte character, or a token with no text
        delta = after[len(before) :]
        self._read = len(self._ids)
        self._prefix = max(0, self._read - _WINDOW)
        self.text += delta
        return delta
