"""Remote provider backends: the endpoint file, keys that never show, the Anthropic
backend against a stand-in of its API, the OpenAI-compatible backend's errors."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from palestra.backends.remote import RemoteEndpoint, Secret, load_endpoint_file, remote_backend
from palestra.backends.remote.anthropic import anthropic_messages
from palestra.core.errors import (
    AuthenticationError,
    BackendError,
    InvalidRequestError,
    ModelNotFoundError,
)
from palestra.core.types import Conversation, GenerationRequest, Message, SamplingParams
from palestra.judge.client import ChatModel
from tests.fakes.anthropic_server import API_KEY, build_anthropic_app
from tests.fakes.server import serve_in_thread
from tests.fakes.tools import WEATHER
from tests.integration.cluster import free_port


def test_endpoint_file_in_fastchat_format(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    file = tmp_path / "endpoints.json"
    file.write_text(
        json.dumps(
            {
                "gpt-4o": {
                    "model_name": "gpt-4o-2024-05-13",
                    "api_type": "openai",
                    "api_base": "https://api.openai.com/v1",
                    "api_key": "sk-secret-inline",
                    "anony_only": False,
                    "recommended_config": {"temperature": 0.7, "top_p": 1.0},
                    "text-arena": True,
                    "vision-arena": True,
                },
                "claude": {
                    "model_name": "claude-x",
                    "api_type": "anthropic",
                    "api_key_env": "MY_CLAUDE_KEY",
                    "anony_only": True,
                },
            }
        )
    )
    gpt, claude = load_endpoint_file(file)
    assert (gpt.name, gpt.provider_model, gpt.vision_arena) == ("gpt-4o", "gpt-4o-2024-05-13", True)
    assert gpt.recommended_config == {"temperature": 0.7, "top_p": 1.0}
    assert gpt.key() == "sk-secret-inline"
    for text in (repr(gpt), str(gpt), json.dumps(gpt.describe())):
        assert "sk-secret-inline" not in text
    assert claude.anony_only and claude.base_url == "https://api.anthropic.com"
    with pytest.raises(InvalidRequestError, match=r"set \$MY_CLAUDE_KEY"):
        claude.key()
    monkeypatch.setenv("MY_CLAUDE_KEY", "from-env")
    assert claude.key() == "from-env"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ({"m": {"api_type": "cohere2"}}, "unknown api_type 'cohere2'; expected one of ai2, "),
        ({"m": {"retries": "many"}}, "field 'retries' should be int"),
        ([], "non-empty object"),
    ],
)
def test_bad_endpoint_files(tmp_path: Path, content: object, message: str) -> None:
    file = tmp_path / "endpoints.json"
    file.write_text(json.dumps(content))
    with pytest.raises(InvalidRequestError, match=message):
        load_endpoint_file(file)


def test_secret_repr() -> None:
    assert "abc" not in repr(Secret("abc")) and Secret("abc").reveal() == "abc"


def test_anthropic_message_shape() -> None:
    system, turns = anthropic_messages(
        [
            Message("system", "Be brief."),
            Message("user", "a"),
            Message("user", "b"),
            Message("assistant", "c"),
            Message("user", "d"),
        ]
    )
    assert system == "Be brief."
    assert turns == [
        {"role": "user", "content": "a\n\nb"},
        {"role": "assistant", "content": "c"},
        {"role": "user", "content": "d"},
    ]


@pytest.fixture(scope="module")
def anthropic_server() -> Iterator[tuple[str, object]]:
    app = build_anthropic_app()
    with serve_in_thread(app) as url:
        yield url, app


def _endpoint(url: str, key: str = API_KEY, model: str = "claude-test") -> RemoteEndpoint:
    return RemoteEndpoint(
        "claude", api_type="anthropic", model_id=model, api_base=url, api_key=Secret(key)
    )


async def _collect(backend, request: GenerationRequest):  # type: ignore[no-untyped-def]
    return [chunk async for chunk in backend.generate(request)]


def test_anthropic_backend_streams(anthropic_server) -> None:  # type: ignore[no-untyped-def]
    url, app = anthropic_server
    backend = remote_backend(_endpoint(url))
    request = GenerationRequest(
        sampling=SamplingParams(temperature=0, max_tokens=50, stop=("END",)),
        conversation=Conversation((Message("system", "Be brief."), Message("user", "hello there"))),
    )
    chunks = asyncio.run(_collect(backend, request))
    assert "".join(c.text for c in chunks) == "Claude heard: hello there"
    assert len(chunks) > 2  # streamed word by word
    last = chunks[-1]
    assert last.finish_reason == "stop" and last.usage is not None
    assert (last.usage.prompt_tokens, last.usage.completion_tokens) == (2, 4)
    body = app.state.bodies[-1]
    assert body["system"] == "Be brief." and body["model"] == "claude-test"
    assert body["temperature"] == 0 and body["stop_sequences"] == ["END"]
    assert body["messages"] == [{"role": "user", "content": "hello there"}]
    short = GenerationRequest(
        sampling=SamplingParams(max_tokens=2), conversation=Conversation((Message("user", "a b"),))
    )
    assert asyncio.run(_collect(backend, short))[-1].finish_reason == "length"
    # The judge's chat function works over it the same way.
    reply = asyncio.run(
        ChatModel(backend).complete([Message("user", "grade this")], temperature=0, max_tokens=20)
    )
    assert reply.text == "Claude heard: grade this" and reply.completion_tokens == 4


def test_anthropic_errors_are_typed_and_keyless(anthropic_server) -> None:  # type: ignore[no-untyped-def]
    url, _ = anthropic_server
    request = GenerationRequest("hi")
    with pytest.raises(AuthenticationError) as caught:
        asyncio.run(_collect(remote_backend(_endpoint(url, key="sk-wrong-key")), request))
    assert caught.value.http_status == 401 and "sk-wrong-key" not in str(caught.value)
    with pytest.raises(ModelNotFoundError, match="missing-model"):
        asyncio.run(_collect(remote_backend(_endpoint(url, model="missing-model")), request))


def test_unreachable_openai_endpoint() -> None:
    endpoint = RemoteEndpoint("gone", api_base=f"http://127.0.0.1:{free_port()}/v1")
    backend = remote_backend(replace(endpoint, retries=0, timeout=5))
    with pytest.raises(BackendError, match="cannot reach openai endpoint 'gone'"):
        asyncio.run(_collect(backend, GenerationRequest("hi")))


def test_anthropic_backend_speaks_tools_both_ways(anthropic_server) -> None:  # type: ignore[no-untyped-def]
    """OpenAI-shaped tools go out as Anthropic's tools and tool_choice; its tool_use comes
    back as an OpenAI tool call; the call and the tool's answer go back as tool_use and
    tool_result blocks."""
    url, app = anthropic_server
    backend = remote_backend(_endpoint(url))
    ask = Message("user", "Oslo")
    request = GenerationRequest(
        sampling=SamplingParams(max_tokens=50),
        conversation=Conversation((ask,), tools=(WEATHER,), tool_choice="required"),
    )
    last = asyncio.run(_collect(backend, request))[-1]
    assert last.finish_reason == "tool_calls"
    (call,) = last.tool_calls
    assert call["id"] == "toolu_01" and call["function"]["name"] == "get_weather"
    assert json.loads(call["function"]["arguments"]) == {"text": "Oslo"}
    sent = app.state.bodies[-1]
    assert sent["tools"] == [
        {
            "name": "get_weather",
            "description": "The weather in a city",
            "input_schema": WEATHER["function"]["parameters"],
        }
    ]
    assert sent["tool_choice"] == {"type": "any"}

    answered = Conversation(
        (ask, Message("assistant", "", tool_calls=(call,)),
         Message("tool", "sunny", tool_call_id=call["id"])),
        tools=(WEATHER,),
    )  # fmt: skip
    reply = asyncio.run(_collect(backend, GenerationRequest(conversation=answered)))
    assert "".join(c.text for c in reply) == "Claude heard: sunny"
    turns = app.state.bodies[-1]["messages"]
    assert turns[1] == {
        "role": "assistant",
        "content": [
            {"type": "tool_use", "id": "toolu_01", "name": "get_weather", "input": {"text": "Oslo"}}
        ],
    }
    assert turns[2]["content"] == [
        {"type": "tool_result", "tool_use_id": "toolu_01", "content": "sunny"}
    ]


def test_claude_on_vertex(anthropic_server) -> None:  # type: ignore[no-untyped-def]
    """anthropic_message_vertex: the Vertex route (project, region, model in the path), the
    access token as a bearer, anthropic_version in the body."""
    from tests.fakes.anthropic_server import VERTEX_TOKEN

    url, app = anthropic_server
    endpoint = RemoteEndpoint(
        "claude-vertex", api_type="anthropic_message_vertex", model_id="claude-sonnet-4@2025",
        api_base=url + "/v1", api_key=Secret(VERTEX_TOKEN), project_id="my-project",
        region="europe-west1",
    )  # fmt: skip
    request = GenerationRequest(conversation=Conversation((Message("user", "hello"),)))
    chunks = asyncio.run(_collect(remote_backend(endpoint), request))
    assert "".join(c.text for c in chunks) == "Claude heard: hello"
    assert app.state.vertex_paths[-1] == ("my-project", "europe-west1")
    assert app.state.bodies[-1]["model"] == "claude-sonnet-4@2025"


def test_anthropic_takes_response_format_as_output_config(anthropic_server) -> None:  # type: ignore[no-untyped-def]
    url, app = anthropic_server
    schema = {"type": "object", "properties": {"city": {"type": "string"}}}
    response_format = {"type": "json_schema", "json_schema": {"name": "c", "schema": schema}}
    request = GenerationRequest(
        conversation=Conversation((Message("user", "city?"),), response_format=response_format)
    )
    asyncio.run(_collect(remote_backend(_endpoint(url)), request))
    sent = app.state.bodies[-1]["output_config"]
    assert sent == {"format": {"type": "json_schema", "schema": schema}}
