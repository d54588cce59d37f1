"""Rendering a conversation with a chat template: the prompt text, its token ids, and the
training loss mask, all from one function so that serving and training never disagree.

How the mask is found, for any template (legacy or the tokenizer's own Jinja): for each
assistant turn i, the conversation up to i rendered with the generation prompt must be a
prefix of the conversation up to and including turn i; the difference is the reply. The
reply's end-of-turn marker (eos, `<|im_end|>`, a next-role header that stops generation)
is inside the mask; whitespace after it is not. Templates that break the prefix rule get a
clear `TemplateError` rather than a silently wrong mask.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from palestra.core.errors import TemplateError
from palestra.core.types import Message
from palestra.templates.jinja_env import compile_template
from palestra.templates.spec import ChatTemplate


class Tokenizer(Protocol):
    """The slice of a Hugging Face tokenizer that rendering uses."""

    bos_token: Any
    eos_token: Any

    def __call__(self, text: str, **kwargs: Any) -> Any: ...


@dataclass(frozen=True)
class RenderedConversation:
    """A rendered conversation: `loss_mask[k]` is 1 where token k belongs to an assistant reply."""

    text: str
    input_ids: list[int]
    loss_mask: list[int]
    assistant_spans: list[tuple[int, int]]  # character spans in `text`

    def masked_text(self, tokenizer: Any) -> list[str]:
        """The decoded runs of masked tokens, for inspection and tests."""
        runs: list[list[int]] = []
        previous = 0
        for token_id, bit in zip(self.input_ids, self.loss_mask, strict=True):
            if bit and not previous:
                runs.append([])
            if bit:
                runs[-1].append(token_id)
            previous = bit
        return [tokenizer.decode(run) for run in runs]


def _as_dicts(messages: Sequence[Message | dict[str, Any]]) -> list[dict[str, Any]]:
    return [m.to_dict() if isinstance(m, Message) else dict(m) for m in messages]


def render_text(
    template: ChatTemplate,
    messages: Sequence[Message | dict[str, Any]],
    *,
    add_generation_prompt: bool,
    **variables: Any,
) -> str:
    """Render messages to text with the template's Jinja source."""
    context: dict[str, Any] = {
        "bos_token": template.bos_token,
        "eos_token": template.eos_token,
        "default_system": template.default_system,
        **template.extra,
        **variables,
    }
    try:
        return compile_template(template.jinja).render(
            messages=_as_dicts(messages), add_generation_prompt=add_generation_prompt, **context
        )
    except TemplateError:
        raise
    except Exception as exc:  # Jinja raises many kinds; the user needs one clear line
        raise TemplateError(f"chat template {template.name!r} failed to render: {exc}") from exc


def render_prompt(
    template: ChatTemplate, messages: Sequence[Message | dict[str, Any]], **variables: Any
) -> str:
    """The text a model continues to write the next assistant reply."""
    return render_text(template, messages, add_generation_prompt=True, **variables)


def render_continuation(
    template: ChatTemplate, messages: Sequence[Message | dict[str, Any]], **variables: Any
) -> str:
    """The text that makes the model go on writing the last (assistant) message: the whole
    conversation rendered, cut right after that message's text (vLLM's and transformers'
    `continue_final_message`)."""
    from palestra.core.errors import InvalidRequestError

    items = _as_dicts(messages)
    last = items[-1] if items else {}
    content = last.get("content")
    if last.get("role") != "assistant" or not isinstance(content, str) or not content:
        raise InvalidRequestError(
            "continue_final_message needs a last assistant message with text to continue",
            param="continue_final_message",
        )
    text = render_text(template, items, add_generation_prompt=False, **variables)
    end = text.rfind(content.rstrip())
    if end == -1:
        raise TemplateError(
            f"chat template {template.name!r} does not render the last message's text as it "
            "is, so it cannot be continued"
        )
    return text[: end + len(content.rstrip())]


def assistant_spans(
    template: ChatTemplate, messages: Sequence[Message | dict[str, Any]], **variables: Any
) -> tuple[str, list[tuple[int, int]]]:
    """The full rendered text and the character span of every assistant reply in it."""
    items = _as_dicts(messages)
    full = render_text(template, items, add_generation_prompt=False, **variables)
    spans: list[tuple[int, int]] = []
    for index, message in enumerate(items):
        if message["role"] != "assistant":
            continue
        before = render_text(template, items[:index], add_generation_prompt=True, **variables)
        through = render_text(
            template, items[: index + 1], add_generation_prompt=False, **variables
        )
        # Some templates close the whole conversation differently (Phi-3 appends eos only
        # at the very end): the reply ends where the two renderings part.
        end = _common_prefix_length(through, full)
        if not (through.startswith(before) and end >= len(before)):
            raise TemplateError(
                f"chat template {template.name!r} renders turn {index} differently depending on "
                "what follows it, so its loss mask cannot be derived; use a template whose "
                "generation prompt is a prefix of the rendered reply"
            )
        spans.append(_trim_to_end_marker(template, full, len(before), end))
    return full, spans


def _common_prefix_length(a: str, b: str) -> int:
    limit = min(len(a), len(b))
    if a[:limit] == b[:limit]:
        return limit
    low, high = 0, limit
    while low < high:  # binary search on the first differing character
        middle = (low + high + 1) // 2
        if a[:middle] == b[:middle]:
            low = middle
        else:
            high = middle - 1
    return low


def _trim_to_end_marker(template: ChatTemplate, full: str, start: int, end: int) -> tuple[int, int]:
    """Keep the end-of-turn marker in the span and drop layout whitespace after it."""
    markers = template.end_markers
    stripped_end = start + len(full[start:end].rstrip())
    if any(full[start:stripped_end].endswith(m) for m in markers):
        return start, stripped_end
    # The turn ends where the next header begins and that header is a stop string
    # (ChatGLM3's `<|user|>`, Falcon's `\nUser:`): the model must learn to write it.
    for position in (stripped_end, end):
        for marker in markers:
            if full.startswith(marker, position):
                return start, position + len(marker)
    return start, end


def render_conversation(
    template: ChatTemplate,
    messages: Sequence[Message | dict[str, Any]],
    tokenizer: Tokenizer | None = None,
    **variables: Any,
) -> RenderedConversation:
    """Render a whole conversation to text, token ids and the assistant-only loss mask.

    Without a tokenizer, ids and mask are empty and only text and spans are filled.
    """
    if tokenizer is not None:
        template = template.with_special_tokens(
            _token_text(tokenizer.bos_token), _token_text(tokenizer.eos_token)
        )
    text, spans = assistant_spans(template, messages, **variables)
    if tokenizer is None:
        return RenderedConversation(text=text, input_ids=[], loss_mask=[], assistant_spans=spans)
    input_ids, loss_mask = _tokenize_with_mask(tokenizer, text, spans)
    return RenderedConversation(
        text=text, input_ids=input_ids, loss_mask=loss_mask, assistant_spans=spans
    )


def _token_text(token: Any) -> str | None:
    if token is None:
        return None
    return str(getattr(token, "content", token))


def _tokenize_with_mask(
    tokenizer: Tokenizer, text: str, spans: list[tuple[int, int]]
) -> tuple[list[int], list[int]]:
    try:
        encoded = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
        offsets = encoded["offset_mapping"]
    except (NotImplementedError, TypeError, KeyError, ValueError):
        return _tokenize_piecewise(tokenizer, text, spans)
    ids = list(encoded["input_ids"])
    mask = []
    for token_start, token_end in offsets:
        inside = any(
            start <= token_start < end or (token_start == token_end == end and end > start)
            for start, end in spans
        )
        mask.append(1 if inside else 0)
    return ids, mask


def _tokenize_piecewise(
    tokenizer: Tokenizer, text: str, spans: list[tuple[int, int]]
) -> tuple[list[int], list[int]]:
    """For tokenizers without offsets: tokenize span by span (boundaries are exact)."""
    ids: list[int] = []
    mask: list[int] = []
    cursor = 0
    for start, end in [*spans, (len(text), len(text))]:
        for piece, bit in ((text[cursor:start], 0), (text[start:end], 1)):
            if piece:
                piece_ids = list(tokenizer(piece, add_special_tokens=False)["input_ids"])
                ids.extend(piece_ids)
                mask.extend([bit] * len(piece_ids))
        cursor = end
    return ids, mask
