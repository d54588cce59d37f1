"""Chat templates: how a conversation becomes a prompt, and which tokens a model learns from.

The tokenizer's own Jinja `chat_template` comes first; named legacy templates (data files in
`data/`) serve models that ship none. `render_conversation` is the one function that renders
text, token ids and the training loss mask together.
"""

from palestra.plugins import get_template, list_templates
from palestra.templates.library import load_template_file
from palestra.templates.render import RenderedConversation, render_conversation, render_prompt
from palestra.templates.resolve import resolve_template
from palestra.templates.spec import ChatTemplate

__all__ = [
    "ChatTemplate",
    "RenderedConversation",
    "get_template",
    "list_templates",
    "load_template_file",
    "render_conversation",
    "render_prompt",
    "resolve_template",
]
