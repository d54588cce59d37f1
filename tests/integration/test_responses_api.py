"""OpenAI's Responses API on Palestra's API server, through the official `openai` SDK's
`client.responses` (sync, async, streamed) on the bundled model: text and instructions,
multi-turn through `previous_response_id` and through input item lists, stored responses
(retrieve, input items, delete), function tools with call outputs, `text.format` JSON
schemas, logprobs, usage, and 400s that say what is not supported."""

from __future__ import annotations

import asyncio
import json
from typing import Literal

import httpx
import openai
import pytest
from pydantic import BaseModel

from tests.integration.cluster import Process

MODEL = "palestra-tiny"
ASK = "What is the capital of France?"
ANSWER = "The capital of France is Paris."
CAPITAL_TOOL = {
    "type": "function",
    "name": "capital",
    "description": "The capital of a country",
    "parameters": {
        "type": "object",
        "properties": {"country": {"type": "string", "enum": ["France", "Italy"]}},
        "required": ["country"],
        "additionalProperties": False,
    },
    "strict": True,
}


@pytest.fixture(scope="module")
def url(stack: dict[str, Process]) -> str:
    return stack["api"].url


@pytest.fixture(scope="module")
def client(url: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0)


def test_text_in_text_out_with_usage(client: openai.OpenAI) -> None:
    response = client.responses.create(model=MODEL, input=ASK, temperature=0)
    assert response.object == "response" and response.id.startswith("resp_")
    assert response.status == "completed" and response.output_text == ANSWER
    (message,) = response.output
    assert message.type == "message" and message.role == "assistant"
    assert response.usage is not None and response.usage.input_tokens > 5
    assert response.usage.total_tokens == response.usage.input_tokens + (
        response.usage.output_tokens
    )
    short = client.responses.create(model=MODEL, input=ASK, temperature=0, max_output_tokens=2)
    assert short.status == "incomplete" and short.usage and short.usage.output_tokens == 2
    assert short.incomplete_details and short.incomplete_details.reason == "max_output_tokens"


def test_instructions_and_an_input_item_list(client: openai.OpenAI) -> None:
    response = client.responses.create(
        model=MODEL, temperature=0, instructions="Answer briefly.",
        input=[
            {"role": "user", "content": ASK},
            {"type": "message", "role": "assistant",
             "content": [{"type": "output_text", "text": ANSWER}]},
            {"role": "user", "content": [{"type": "input_text", "text": "And of Italy?"}]},
        ],
    )  # fmt: skip
    assert "Rome" in response.output_text
    assert response.instructions == "Answer briefly."


def test_previous_response_id_and_the_store(client: openai.OpenAI) -> None:
    first = client.responses.create(model=MODEL, input=ASK, temperature=0)
    second = client.responses.create(
        model=MODEL, input="And of Italy?", previous_response_id=first.id, temperature=0
    )
    assert "Rome" in second.output_text and second.previous_response_id == first.id
    # the model was sent the first turn too: the question, its answer, then this one
    alone = client.responses.create(model=MODEL, input="And of Italy?", temperature=0)
    assert second.usage and alone.usage and first.usage
    assert second.usage.input_tokens > alone.usage.input_tokens + first.usage.output_tokens
    assert client.responses.retrieve(second.id).output_text == second.output_text
    items = client.responses.input_items.list(second.id)
    assert [item.type for item in items.data] == ["message"]
    assert items.data[0].content[0].text == "And of Italy?"  # type: ignore[union-attr]
    client.responses.delete(first.id)
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(first.id)
    with pytest.raises(openai.BadRequestError, match=r"previous response .* is not stored") as gone:
        client.responses.create(model=MODEL, input="And?", previous_response_id=second.id)
    assert gone.value.code == "previous_response_not_found"
    unstored = client.responses.create(model=MODEL, input=ASK, store=False, max_output_tokens=3)
    with pytest.raises(openai.NotFoundError, match="store: false"):
        client.responses.retrieve(unstored.id)


def test_streamed_events_add_up_to_the_response(client: openai.OpenAI) -> None:
    with client.responses.stream(model=MODEL, input=ASK, temperature=0) as stream:
        deltas = [event.delta for event in stream if event.type == "response.output_text.delta"]
        final = stream.get_final_response()
    assert "".join(deltas) == ANSWER and len(deltas) >= 2  # the first text, then 20 ms frames
    assert final.output_text == ANSWER and final.status == "completed"
    assert client.responses.retrieve(final.id).output_text == ANSWER  # a stream is stored too
    events = list(client.responses.create(model=MODEL, input=ASK, temperature=0, stream=True))
    kinds = [event.type for event in events]
    assert kinds[:4] == ["response.created", "response.in_progress",
                         "response.output_item.added", "response.content_part.added"]  # fmt: skip
    assert kinds[-4:] == ["response.output_text.done", "response.content_part.done",
                          "response.output_item.done", "response.completed"]  # fmt: skip
    assert [event.sequence_number for event in events] == list(range(len(events)))


def test_async_client(url: str) -> None:
    async def ask() -> tuple[str, str]:
        client = openai.AsyncOpenAI(base_url=url + "/v1", api_key="unused", max_retries=0)
        whole = await client.responses.create(model=MODEL, input=ASK, temperature=0)
        stream = await client.responses.create(model=MODEL, input=ASK, temperature=0, stream=True)
        streamed = "".join(
            [e.delta async for e in stream if e.type == "response.output_text.delta"]
        )
        return whole.output_text, streamed

    assert asyncio.run(ask()) == (ANSWER, ANSWER)


@pytest.mark.parametrize("stream", [False, True])
def test_a_forced_function_call_and_its_output(client: openai.OpenAI, stream: bool) -> None:
    forced = {"type": "function", "name": "capital"}
    if stream:
        with client.responses.stream(
            model=MODEL,
            input=ASK,
            tools=[CAPITAL_TOOL],
            tool_choice=forced,  # type: ignore[arg-type]
        ) as events:
            response = events.get_final_response()
    else:
        response = client.responses.create(
            model=MODEL,
            input=ASK,
            tools=[CAPITAL_TOOL],
            tool_choice=forced,  # type: ignore[arg-type]
        )
    (call,) = [item for item in response.output if item.type == "function_call"]
    assert call.name == "capital" and call.call_id
    assert json.loads(call.arguments)["country"] in ("France", "Italy")
    after = client.responses.create(
        model=MODEL, previous_response_id=response.id, temperature=0, max_output_tokens=30,
        input=[{"type": "function_call_output", "call_id": call.call_id, "output": "Paris"}],
        tools=[CAPITAL_TOOL], tool_choice="none",  # type: ignore[list-item]
    )  # fmt: skip
    assert after.output[0].type == "message" and after.output_text


def test_allowed_tools_narrow_the_choice(client: openai.OpenAI) -> None:
    other = {**CAPITAL_TOOL, "name": "weather", "description": "The weather in a city"}
    response = client.responses.create(
        model=MODEL, input=ASK, tools=[other, CAPITAL_TOOL],  # type: ignore[list-item]
        tool_choice={"type": "allowed_tools", "mode": "required",
                     "tools": [{"type": "function", "name": "capital"}]},
    )  # fmt: skip
    assert [item.name for item in response.output if item.type == "function_call"] == ["capital"]


def test_json_schema_text_format_and_parse(client: openai.OpenAI) -> None:
    schema = {"type": "object", "properties": {"city": {"type": "string", "enum": ["Paris"]}},
              "required": ["city"], "additionalProperties": False}  # fmt: skip
    response = client.responses.create(
        model=MODEL, input=ASK, temperature=0,
        text={"format": {"type": "json_schema", "name": "city", "schema": schema, "strict": True}},
    )  # fmt: skip
    assert response.output_text == '{"city":"Paris"}'

    class City(BaseModel):
        city: Literal["Paris", "Rome"]

    parsed = client.responses.parse(model=MODEL, input=ASK, temperature=0, text_format=City)
    assert isinstance(parsed.output_parsed, City)  # the schema held: JSON, and a known city


def test_logprobs_when_included(client: openai.OpenAI) -> None:
    response = client.responses.create(
        model=MODEL, input=ASK, temperature=0, max_output_tokens=4, top_logprobs=2,
        include=["message.output_text.logprobs"],
    )  # fmt: skip
    part = response.output[0].content[0]  # type: ignore[union-attr]
    assert part.logprobs is not None and len(part.logprobs) == 4  # type: ignore[union-attr]
    assert all(len(entry.top_logprobs) == 2 for entry in part.logprobs)  # type: ignore[union-attr]


def test_what_is_not_supported_is_a_clear_400(client: openai.OpenAI, url: str) -> None:
    with pytest.raises(openai.BadRequestError, match="'web_search' is one of OpenAI's hosted"):
        client.responses.create(model=MODEL, input=ASK, tools=[{"type": "web_search"}])
    with pytest.raises(openai.BadRequestError, match="background responses are not supported"):
        client.responses.create(model=MODEL, input=ASK, background=True)
    with pytest.raises(openai.BadRequestError, match="no Files API"):
        client.responses.create(
            model=MODEL,
            input=[{"role": "user", "content": [{"type": "input_image", "file_id": "file-1"}]}],
        )
    with pytest.raises(openai.NotFoundError, match="nope"):
        client.responses.create(model="nope", input=ASK)
    unknown = httpx.post(f"{url}/v1/responses", json={"model": MODEL, "input": ASK, "x": 1})
    assert unknown.status_code == 400 and unknown.json()["error"]["param"] == "x"
    empty = httpx.post(f"{url}/v1/responses", json={"model": MODEL})
    assert empty.status_code == 400 and "input is required" in empty.json()["error"]["message"]
