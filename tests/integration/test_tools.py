"""Tool calling through the API: forced calls (`required`, a named function) on the real
bundled model via constrained decoding, and `auto` parsing through a scripted worker
(no tool-trained model can run here)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest

from tests.integration.cluster import Process, scripted_api

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "city": {"enum": ["Paris", "Rome", "Oslo"]},
                "days": {"type": "integer", "minimum": 1, "maximum": 7},
            },
            "required": ["city", "days"],
        },
    },
}
ADD = {
    "type": "function",
    "function": {
        "name": "add",
        "parameters": {
            "type": "object",
            "additionalProperties": False,
            "properties": {"a": {"type": "integer", "minimum": 0, "maximum": 99}},
            "required": ["a"],
        },
    },
}
ASK = [{"role": "user", "content": "What is the weather in Paris?"}]
# Every call these schemas allow is bounded (integers have both limits), and the longest
# takes ~42 tokens; constrained decoding may spell it in smaller tokens, so leave room
# (the prompt with both tools is 419 of the model's 512 tokens).
MAX_CALL_TOKENS = 90


@pytest.fixture(scope="module")
def client(stack: dict[str, Process]) -> openai.OpenAI:
    return openai.OpenAI(base_url=stack["api"].url + "/v1", api_key="x", max_retries=0)


def test_named_tool_choice_forces_a_valid_call(client: openai.OpenAI) -> None:
    reply = client.chat.completions.create(
        model="palestra-tiny",
        messages=ASK,
        tools=[WEATHER, ADD],
        max_tokens=MAX_CALL_TOKENS,
        tool_choice={"type": "function", "function": {"name": "get_weather"}},
    )
    choice = reply.choices[0]
    assert choice.finish_reason == "tool_calls"
    call = choice.message.tool_calls[0]  # type: ignore[index]
    assert call.function.name == "get_weather"  # type: ignore[union-attr]
    arguments = json.loads(call.function.arguments)  # type: ignore[union-attr]
    assert arguments["city"] in {"Paris", "Rome", "Oslo"} and 1 <= arguments["days"] <= 7


def test_required_tool_choice_streams_a_call(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(
        model="palestra-tiny",
        messages=ASK,
        tools=[WEATHER, ADD],
        tool_choice="required",
        max_tokens=MAX_CALL_TOKENS,
        stream=True,
    )
    calls, finish = [], None
    for chunk in stream:
        for choice in chunk.choices:
            calls.extend(choice.delta.tool_calls or [])
            finish = choice.finish_reason or finish
    assert finish == "tool_calls" and len(calls) == 1
    assert calls[0].function.name in {"get_weather", "add"}  # type: ignore[union-attr]
    json.loads(calls[0].function.arguments)  # type: ignore[union-attr]


def test_tool_choice_errors(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError, match="not among the tools"):
        client.chat.completions.create(
            model="palestra-tiny",
            messages=ASK,
            tools=[WEATHER],
            tool_choice={"type": "function", "function": {"name": "nope"}},
        )


@pytest.fixture(scope="module")
def scripted(tmp_path_factory: pytest.TempPathFactory) -> Iterator[openai.OpenAI]:
    script = Path(tmp_path_factory.mktemp("script")) / "tool-model.json"
    script.write_text(
        json.dumps(
            {
                "model_name": "tool-model",
                "template": "chatml",
                "replies": [
                    'I will check. <tool_call>{"name": "get_weather", '
                    '"arguments": {"city": "Paris", "days": 1}}</tool_call>',
                    "It is sunny in Paris today.",
                ],
            }
        )
    )
    with scripted_api(script) as api:
        yield openai.OpenAI(base_url=api.url + "/v1", api_key="x", max_retries=0)


def test_auto_tool_call_round_trip(scripted: openai.OpenAI) -> None:
    first = scripted.chat.completions.create(model="tool-model", messages=ASK, tools=[WEATHER])
    message = first.choices[0].message
    assert first.choices[0].finish_reason == "tool_calls"
    assert message.content == "I will check."
    call = message.tool_calls[0]  # type: ignore[index]
    assert json.loads(call.function.arguments) == {"city": "Paris", "days": 1}  # type: ignore[union-attr]
    history = [
        *ASK,
        message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": call.id, "content": '{"sky": "sunny"}'},
    ]
    second = scripted.chat.completions.create(model="tool-model", messages=history, tools=[WEATHER])
    assert second.choices[0].message.content == "It is sunny in Paris today."
    assert second.choices[0].finish_reason == "stop" and not second.choices[0].message.tool_calls


def test_tool_choice_none_leaves_text_alone(scripted: openai.OpenAI) -> None:
    reply = scripted.chat.completions.create(
        model="tool-model", messages=ASK, tools=[WEATHER], tool_choice="none"
    )
    assert reply.choices[0].message.tool_calls is None
    assert "<tool_call>" in (reply.choices[0].message.content or "")
