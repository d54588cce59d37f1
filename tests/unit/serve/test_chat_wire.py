"""What a chat completion's vLLM-style template fields become on the way to a worker: the
API body, the wire payload, the conversation the worker rebuilds, and the prompt its
backend renders with a template that reads them."""

from __future__ import annotations

from pathlib import Path

from palestra.backends.scripted import ScriptedBackend
from palestra.serve.openai.chat import payloads
from palestra.serve.openai.schemas import ChatCompletionRequest
from palestra.serve.wire import GenerateRequest

TEMPLATE = (
    "{% for m in messages %}<{{ m.role }}>{{ m.content }}</{{ m.role }}>{% endfor %}"
    "{% if add_generation_prompt %}<assistant>{% endif %}"
    "{% if enable_thinking is defined and not enable_thinking %}/no_think{% endif %}"
    "{% if reasoning_effort is defined %}[effort={{ reasoning_effort }}]{% endif %}"
)


def test_template_fields_travel_from_the_api_to_the_prompt(tmp_path: Path) -> None:
    body = ChatCompletionRequest.model_validate(
        {
            "model": "m",
            "messages": [{"role": "user", "content": "Hi"}],
            "chat_template_kwargs": {"enable_thinking": False},
            "reasoning_effort": "low",
            "service_tier": "flex",
        }
    )
    (payload,) = payloads(body, body.message_dicts())
    conversation = GenerateRequest.model_validate(payload).conversation()
    assert conversation is not None
    assert conversation.provider_options == {"reasoning_effort": "low", "service_tier": "flex"}
    (tmp_path / "t.jinja").write_text(TEMPLATE)
    backend = ScriptedBackend(template=str(tmp_path / "t.jinja"))
    assert backend.render(conversation) == "<user>Hi</user><assistant>/no_think[effort=low]"

    continued = ChatCompletionRequest.model_validate(
        {
            "model": "m",
            "messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Yo"}],
            "add_generation_prompt": False,
            "continue_final_message": True,
        }
    )
    (payload,) = payloads(continued, continued.message_dicts())
    conversation = GenerateRequest.model_validate(payload).conversation()
    assert conversation is not None
    assert backend.render(conversation) == "<user>Hi</user><assistant>Yo"
