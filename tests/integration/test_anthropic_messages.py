"""Anthropic's Messages API on Palestra's API server, through the official `anthropic` SDK
pointed at it, on the bundled model: plain and streamed replies, system and multi-turn, a
forced tool call and its result, and errors in Anthropic's shape."""

from __future__ import annotations

import asyncio

import anthropic
import httpx
import pytest

from tests.integration.cluster import Process

MODEL = "palestra-tiny"
GREEDY = {"extra_body": {"temperature": 0}}  # the current SDK no longer types temperature
ASK = [{"role": "user", "content": "What is the capital of France?"}]
ANSWER = "The capital of France is Paris."
CAPITAL_TOOL = {
    "name": "capital",
    "description": "The capital of a country",
    "input_schema": {
        "type": "object",
        "properties": {"country": {"type": "string", "enum": ["France", "Italy"]}},
        "required": ["country"],
        "additionalProperties": False,
    },
}


@pytest.fixture(scope="module")
def url(stack: dict[str, Process]) -> str:
    return stack["api"].url


@pytest.fixture(scope="module")
def client(url: str) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=url, api_key="unused", max_retries=0)


def test_a_message_and_its_usage(client: anthropic.Anthropic) -> None:
    reply = client.messages.create(model=MODEL, max_tokens=40, messages=ASK, **GREEDY)
    assert reply.type == "message" and reply.role == "assistant"
    assert [block.type for block in reply.content] == ["text"]
    assert reply.content[0].text == ANSWER  # type: ignore[union-attr]
    assert reply.stop_reason == "end_turn"
    assert reply.usage.input_tokens > 5 and reply.usage.output_tokens > 3
    short = client.messages.create(model=MODEL, max_tokens=2, messages=ASK, **GREEDY)
    assert short.stop_reason == "max_tokens" and short.usage.output_tokens == 2


def test_system_and_multi_turn(client: anthropic.Anthropic) -> None:
    turns = [*ASK, {"role": "assistant", "content": ANSWER},
             {"role": "user", "content": "And of Italy?"}]  # fmt: skip
    reply = client.messages.create(
        model=MODEL, max_tokens=40, messages=turns, system="Answer briefly.", **GREEDY
    )
    assert "Rome" in reply.content[0].text  # type: ignore[union-attr]


def test_streamed_events(client: anthropic.Anthropic) -> None:
    with client.messages.stream(model=MODEL, max_tokens=40, messages=ASK, **GREEDY) as stream:
        pieces = list(stream.text_stream)
        final = stream.get_final_message()
    assert "".join(pieces) == ANSWER and len(pieces) >= 2  # the first text, then 20 ms frames
    assert final.content[0].text == ANSWER  # type: ignore[union-attr]
    assert final.stop_reason == "end_turn" and final.usage.output_tokens > 3
    raw = client.messages.create(model=MODEL, max_tokens=40, messages=ASK, stream=True, **GREEDY)
    kinds = [event.type for event in raw]
    assert kinds[0] == "message_start" and kinds[-2:] == ["message_delta", "message_stop"]
    assert {"content_block_start", "content_block_delta", "content_block_stop"} <= set(kinds)


def test_async_client(url: str) -> None:
    async def ask() -> str:
        client = anthropic.AsyncAnthropic(base_url=url, api_key="unused", max_retries=0)
        reply = await client.messages.create(model=MODEL, max_tokens=40, messages=ASK, **GREEDY)
        return reply.content[0].text  # type: ignore[union-attr]

    assert asyncio.run(ask()) == ANSWER


@pytest.mark.parametrize("stream", [False, True])
def test_a_forced_tool_call_and_its_result(client: anthropic.Anthropic, stream: bool) -> None:
    choice = {"type": "tool", "name": "capital"}
    if stream:
        with client.messages.stream(
            model=MODEL, max_tokens=60, messages=ASK, tools=[CAPITAL_TOOL], tool_choice=choice
        ) as events:
            reply = events.get_final_message()
    else:
        reply = client.messages.create(
            model=MODEL, max_tokens=60, messages=ASK, tools=[CAPITAL_TOOL], tool_choice=choice
        )
    assert reply.stop_reason == "tool_use"
    (use,) = [block for block in reply.content if block.type == "tool_use"]
    assert use.name == "capital" and use.input in ({"country": "France"}, {"country": "Italy"})
    answered = [
        *ASK,
        {"role": "assistant", "content": [use.model_dump()]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": use.id,
                                      "content": "Paris"}]},
    ]  # fmt: skip
    after = client.messages.create(
        model=MODEL, max_tokens=30, messages=answered, tools=[CAPITAL_TOOL],
        tool_choice={"type": "none"}, **GREEDY,
    )  # fmt: skip
    assert after.stop_reason in ("end_turn", "max_tokens") and after.content[0].type == "text"


def test_structured_output_config(client: anthropic.Anthropic) -> None:
    schema = {"type": "object", "properties": {"city": {"type": "string", "enum": ["Paris"]}},
              "required": ["city"], "additionalProperties": False}  # fmt: skip
    reply = client.messages.create(
        model=MODEL, max_tokens=30, messages=ASK, speed="standard", inference_geo="eu",
        output_config={"format": {"type": "json_schema", "schema": schema}, "effort": "low"},
        **GREEDY,
    )  # fmt: skip
    assert reply.content[0].text == '{"city":"Paris"}'  # type: ignore[union-attr]


def test_errors_in_anthropics_shape(client: anthropic.Anthropic, url: str) -> None:
    with pytest.raises(anthropic.NotFoundError) as missing:
        client.messages.create(model="claude-nope", max_tokens=5, messages=ASK)
    assert missing.value.body["error"]["type"] == "not_found_error"  # type: ignore[index]
    with pytest.raises(anthropic.BadRequestError) as refused:
        client.messages.create(
            model=MODEL, max_tokens=5,
            messages=[{"role": "user", "content": [{"type": "image", "source": {
                "type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}}]}],
        )  # fmt: skip
    assert refused.value.body["type"] == "error"  # type: ignore[index]
    body = {"model": MODEL, "messages": ASK}  # max_tokens is required
    response = httpx.post(f"{url}/v1/messages", json=body, timeout=30)
    assert response.status_code == 400
    assert response.json()["error"]["type"] == "invalid_request_error"
