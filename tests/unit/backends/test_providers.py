"""Provider types against loopback stand-ins as strict as the services: FastChat's LM-Arena
demo endpoint file as it is (Azure deployments, a reasoning model), whole replies, Gemini
through google-genai, the long tail through LiteLLM, retries and the outage record, keys
kept out of errors, and a provider type added by a plugin."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from palestra.backends.remote import (
    ProviderType,
    RemoteEndpoint,
    Secret,
    load_endpoint_file,
    remote_backend,
)
from palestra.backends.remote.openai_compat import OpenAICompatibleBackend
from palestra.core.errors import (
    BackendError,
    InvalidRequestError,
    ModelNotFoundError,
    UnsupportedError,
)
from palestra.core.types import Conversation, GenerationRequest, Message, SamplingParams
from tests.fakes.gemini_server import GEMINI_KEY, build_gemini_app
from tests.fakes.ollama_server import build_ollama_app
from tests.fakes.openai_server import AZURE_KEY, build_openai_app
from tests.fakes.server import serve_in_thread
from tests.fakes.tools import WEATHER

# FastChat's docs/arena "LM-Arena demo for checklist assistant" file, keys filled in and the
# Azure address replaced by the stand-in's (see `demo_file`).
DEMO_FILE = """{
    "Checklist-GPT-4-0125-Preview": {
        "model_name": "Checklist-GPT-4-0125-Preview",
        "api_type": "openai",
        "azure_api_version": "2024-02-01",
        "api_base": "https://checklist.openai.azure.com/",
        "api_key": "",
        "anony_only": false,
        "recommended_config": {
        "temperature": 0.7,
        "top_p": 1.0
        },
        "text-arena": true,
        "vision-arena": false
    },
    "Checklist-GPT-o1": {
        "model_name": "Checklist-GPT-o1",
        "api_type": "openai_o1",
        "azure_api_version": "2024-02-01",
        "api_base": "https://checklist.openai.azure.com/",
        "api_key": "",
        "anony_only": false,
        "recommended_config": {
        "temperature": 0.7,
        "top_p": 1.0
        },
        "text-arena": true,
        "vision-arena": false
    }
}"""


def demo_file(folder: Path, base: str) -> Path:
    """The demo file pointed at `base` with the stand-in's key; otherwise unchanged."""
    text = DEMO_FILE.replace("https://checklist.openai.azure.com/", base + "/")
    text = text.replace('"api_key": ""', f'"api_key": "{AZURE_KEY}"')
    file = folder / "api_endpoint.json"
    file.write_text(text)
    return file


@pytest.fixture(scope="module")
def openai_stand_in() -> Iterator[tuple[str, Any]]:
    app = build_openai_app()
    with serve_in_thread(app) as url:
        yield url, app


# One event loop for the module, as in a server: a backend's client keeps its connections.
LOOP = asyncio.new_event_loop()


@pytest.fixture(scope="module", autouse=True)
def _loop() -> Iterator[None]:
    yield
    LOOP.close()


def run(backend: Any, conversation: Conversation, **sampling: Any) -> list[Any]:
    request = GenerationRequest(sampling=SamplingParams(**sampling), conversation=conversation)

    async def collect() -> list[Any]:
        return [chunk async for chunk in backend.generate(request)]

    return LOOP.run_until_complete(collect())


def text_of(chunks: list[Any]) -> str:
    return "".join(c.text for c in chunks)


ASK = Conversation((Message("system", "Be brief."), Message("user", "Hi")))


def test_the_fastchat_demo_file_answers_through_azure(
    tmp_path: Path, openai_stand_in: tuple[str, Any]
) -> None:
    url, app = openai_stand_in
    gpt4, o1 = load_endpoint_file(demo_file(tmp_path, url))
    assert (gpt4.api_type, gpt4.azure_api_version, gpt4.azure) == ("openai", "2024-02-01", True)
    assert o1.api_type == "openai_o1" and o1.recommended_config["temperature"] == 0.7

    app.state.headers.clear()
    chunks = run(remote_backend(gpt4), ASK, temperature=0.7, max_tokens=40)
    assert text_of(chunks) == "Scripted Checklist-GPT-4-0125-Preview heard: Hi"
    headers = app.state.headers[-1]
    assert headers["api-key"] == AZURE_KEY and "authorization" not in headers

    chunks = run(remote_backend(o1), ASK, temperature=0.7, top_p=0.9, max_tokens=40)
    assert text_of(chunks) == "Scripted Checklist-GPT-o1 heard: Hi"
    body = app.state.bodies[-1]
    assert body["messages"][0] == {"role": "developer", "content": "Be brief."}
    assert body["max_completion_tokens"] == 40 and body["stream"] is True
    assert not {"temperature", "top_p", "max_tokens"} & set(body)  # the stand-in refuses them


def test_azure_by_name_and_its_routes(openai_stand_in: tuple[str, Any]) -> None:
    """FastChat's convention: "azure" in the model name means an Azure deployment (here
    with Azure's current GA api-version); without the key Azure answers 401."""
    url, _ = openai_stand_in
    endpoint = RemoteEndpoint(
        "gpt4", model_id="gpt-4o-azure", api_base=url, api_key=Secret(AZURE_KEY), retries=0
    )
    assert text_of(run(remote_backend(endpoint), ASK)) == "Scripted gpt-4o-azure heard: Hi"
    wrong = replace(endpoint, api_key=Secret("not-the-key-000"))
    with pytest.raises(Exception) as caught:
        run(remote_backend(wrong), ASK)
    assert getattr(caught.value, "http_status", None) == 401
    assert "not-the-key-000" not in str(caught.value)


def test_reasoning_effort_whole_replies_and_a_model_that_will_not_stream(
    openai_stand_in: tuple[str, Any],
) -> None:
    url, app = openai_stand_in
    o1 = RemoteEndpoint(
        "o1", api_type="openai_o1", model_id="o1-nostream", api_base=url + "/v1",
        api_key=Secret("k"), reasoning_effort="high",
    )  # fmt: skip
    backend = remote_backend(o1)
    chunks = run(backend, ASK, max_tokens=30)
    assert text_of(chunks) == "Scripted o1-nostream heard: Hi"
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 4
    refused, whole = app.state.bodies[-2:]
    assert refused["stream"] is True and whole["stream"] is False
    assert whole["reasoning_effort"] == "high"
    run(backend, ASK)  # from now on whole replies at once
    assert app.state.bodies[-1]["stream"] is False

    plain = RemoteEndpoint(
        "p", api_type="openai_no_stream", model_id="scripted", api_base=url + "/v1"
    )
    chunks = run(remote_backend(plain), ASK)
    assert app.state.bodies[-1]["stream"] is False and chunks[-1].finish_reason == "stop"
    assert text_of(chunks) == "Scripted scripted heard: Hi"


def test_endpoint_overrides_reach_the_wire(openai_stand_in: tuple[str, Any]) -> None:
    """fixed_temperature (FastChat's, for YandexGPT) and recommended_config.extra_body;
    folder_id makes YandexGPT's model URI and project header."""
    url, app = openai_stand_in
    endpoint = RemoteEndpoint(
        "y", api_type="yandexgpt", model_id="yandexgpt/latest", api_base=url + "/v1",
        api_key=Secret("k"), fixed_temperature=0.3, folder_id="b1gfolder",
        recommended_config={"extra_body": {"safety": "off"}},
    )  # fmt: skip
    run(remote_backend(endpoint), ASK, temperature=1.5)
    body, headers = app.state.bodies[-1], app.state.headers[-1]
    assert body["temperature"] == 0.3 and body["safety"] == "off"
    assert body["model"] == "gpt://b1gfolder/yandexgpt/latest"
    assert headers["openai-project"] == "b1gfolder"


def test_retries_then_the_envelope_and_the_outage(openai_stand_in: tuple[str, Any]) -> None:
    url, app = openai_stand_in
    flaky = RemoteEndpoint("f", model_id="flaky-2", api_base=url + "/v1", retries=2)
    before = len(app.state.bodies)
    chunks = run(remote_backend(flaky), ASK)
    assert text_of(chunks) == "Scripted flaky-2 heard: Hi"
    assert len(app.state.bodies) - before == 3  # two 503s, then the answer

    dead = remote_backend(
        RemoteEndpoint("d", model_id="dead", api_base=url + "/v1", retries=1,
                       api_key=Secret("sk-dead-secret"))
    )  # fmt: skip
    for _ in range(2):
        with pytest.raises(BackendError) as caught:
            run(dead, ASK)
        assert caught.value.http_status == 503
        assert "overloaded" in caught.value.message and "sk-dead-secret" not in str(caught.value)
    assert dead.outage.out and "503" in dead.outage.last_error
    assert not dead.outage.may_battle()  # left out of battles...
    dead.outage.clock = lambda: float("inf")
    assert dead.outage.may_battle()  # ...until a battle may try it again
    dead.outage.answered()
    assert not dead.outage.out


def test_a_callers_mistake_is_not_an_outage(openai_stand_in: tuple[str, Any]) -> None:
    url, _ = openai_stand_in
    backend = remote_backend(RemoteEndpoint("s", model_id="scripted", api_base=url + "/v1"))
    bad = Conversation((Message("user", "x"),), tool_choice="required")  # no tools: a 400
    for _ in range(3):
        with pytest.raises(InvalidRequestError):
            run(backend, bad)
    assert not backend.outage.out


def test_the_file_as_operators_write_it(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    file = tmp_path / "endpoints.json"
    file.write_text(
        json.dumps(
            {
                "gpt": {"model_name": "gpt-4o", "api_type": "openai", "api_key": "k",
                        "custom_system_prompt": True, "stream": False, "p2l_weight": 2},
                "assistant": {"model_name": "x", "api_type": "openai_assistant",
                              "assistant_id": "asst_1"},
                "yandex": {"model_name": "yandexgpt", "api_type": "yandexgpt",
                           "folder_id": "b1g", "fixed_temperature": 0.5},
            }
        )
    )  # fmt: skip
    with caplog.at_level(logging.WARNING):
        endpoints = load_endpoint_file(file)
    assert [e.name for e in endpoints] == ["gpt", "yandex"]
    assert "unknown field(s) p2l_weight ignored" in caplog.text
    assert "'assistant' left out" in caplog.text and "Assistants API" in caplog.text
    gpt, yandex = endpoints
    assert gpt.custom_system_prompt and gpt.stream is False
    assert (yandex.folder_id, yandex.fixed_temperature) == ("b1g", 0.5)
    assert yandex.base_url == "https://llm.api.cloud.yandex.net/v1"


@pytest.fixture(scope="module")
def gemini_stand_in() -> Iterator[tuple[str, Any]]:
    app = build_gemini_app()
    with serve_in_thread(app) as url:
        yield url, app


def test_gemini_streams_text_images_and_tools(gemini_stand_in: tuple[str, Any]) -> None:
    url, app = gemini_stand_in
    endpoint = RemoteEndpoint(
        "gemini", api_type="gemini", model_id="gemini-2.5-flash", api_base=url,
        api_key=Secret(GEMINI_KEY), vision_arena=True,
    )  # fmt: skip
    backend = remote_backend(endpoint)
    chunks = run(backend, ASK, temperature=0.2, max_tokens=33, stop=("END",))
    assert text_of(chunks) == "Gemini gemini-2.5-flash heard: Hi" and len(chunks) > 3
    body = app.state.bodies[-1]
    assert body["systemInstruction"]["parts"] == [{"text": "Be brief."}]
    assert body["contents"] == [{"role": "user", "parts": [{"text": "Hi"}]}]
    config = body["generationConfig"]
    assert (config["temperature"], config["maxOutputTokens"]) == (0.2, 33)
    assert config["stopSequences"] == ["END"]
    assert chunks[-1].usage is not None and chunks[-1].usage.prompt_tokens == 7

    pixel = "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR4nGNgYGAAAAAEAAH2FzhVAAAAAElFTkSuQmCC"  # noqa: E501
    seeing = Conversation((Message("user", "What is this?", images=(pixel,)),))
    assert text_of(run(backend, seeing)) == "I see 1 image(s)."
    inline = app.state.bodies[-1]["contents"][0]["parts"][0]["inlineData"]
    assert inline.get("mimeType", inline.get("mime_type")) == "image/png"  # proto JSON: both

    asked = Message("user", "Oslo")
    last = run(backend, Conversation((asked,), tools=(WEATHER,), tool_choice="required"))[-1]
    assert last.finish_reason == "tool_calls"
    (call,) = last.tool_calls
    assert call["function"]["name"] == "get_weather"
    assert json.loads(call["function"]["arguments"]) == {"text": "Oslo"}
    sent = app.state.bodies[-1]
    assert sent["toolConfig"]["functionCallingConfig"]["mode"] == "ANY"
    declaration = sent["tools"][0]["functionDeclarations"][0]
    assert declaration["name"] == "get_weather"
    answered = Conversation(
        (asked, Message("assistant", "", tool_calls=(call,)),
         Message("tool", "sunny", tool_call_id=call["id"])),
        tools=(WEATHER,),
    )  # fmt: skip
    assert text_of(run(backend, answered)) == "The tool said: sunny"
    turns = app.state.bodies[-1]["contents"]
    assert turns[1]["role"] == "model" and "functionCall" in turns[1]["parts"][0]
    assert turns[2]["parts"][0]["functionResponse"]["name"] == "get_weather"


def test_gemini_whole_replies_vertex_and_a_bad_key(gemini_stand_in: tuple[str, Any]) -> None:
    url, _ = gemini_stand_in
    vertex = RemoteEndpoint(
        "v", api_type="vertex", model_id="gemini-2.5-pro", api_base=url, api_key=Secret(GEMINI_KEY)
    )
    assert text_of(run(remote_backend(vertex), ASK)) == "Gemini gemini-2.5-pro heard: Hi"
    endpoint = RemoteEndpoint(
        "g", api_type="gemini_no_stream", model_id="gemini-pro", api_base=url,
        api_key=Secret(GEMINI_KEY),
    )  # fmt: skip
    chunks = run(remote_backend(endpoint), ASK)
    assert [c.text for c in chunks] == ["Gemini gemini-pro heard: Hi", ""]
    wrong = replace(endpoint, api_key=Secret("wrong-gemini-key"))
    with pytest.raises(InvalidRequestError, match="API key not valid") as caught:
        run(remote_backend(wrong), ASK)
    assert "wrong-gemini-key" not in str(caught.value)


def test_the_long_tail_through_litellm() -> None:
    """Ollama's native API (not OpenAI's) through LiteLLM: text, a tool call and its
    answer, and a missing model as a 404."""
    app = build_ollama_app()
    with serve_in_thread(app) as url:
        endpoint = RemoteEndpoint(
            "local-llama", api_type="litellm", model_id="ollama_chat/llama3.2", api_base=url
        )
        backend = remote_backend(endpoint)
        chunks = run(backend, ASK, temperature=0.1, max_tokens=21)
        assert text_of(chunks) == "Ollama llama3.2 heard: Hi"
        options = app.state.bodies[-1]["options"]
        assert (options["temperature"], options["num_predict"]) == (0.1, 21)
        asked = Message("user", "Oslo")
        last = run(backend, Conversation((asked,), tools=(WEATHER,)))[-1]
        (call,) = last.tool_calls
        assert last.finish_reason == "tool_calls"
        assert json.loads(call["function"]["arguments"]) == {"text": "Oslo"}
        answered = Conversation(
            (asked, Message("assistant", "", tool_calls=(call,)),
             Message("tool", "sunny", tool_call_id=call["id"])),
            tools=(WEATHER,),
        )  # fmt: skip
        assert text_of(run(backend, answered)) == "The tool said: sunny"
        missing = remote_backend(replace(endpoint, model_id="ollama_chat/nope", retries=0))
        with pytest.raises(ModelNotFoundError, match="not found"):
            run(missing, ASK)


class EchoProviderPlugin:
    """A third-party provider type: an OpenAI-compatible service under a name of its own."""

    @staticmethod
    def register_providers() -> list[ProviderType]:
        def create(endpoint: RemoteEndpoint) -> OpenAICompatibleBackend:
            return OpenAICompatibleBackend(endpoint)

        fields = frozenset({"tenant"})
        return [ProviderType("acme", create, "Acme's API", key_required=False, fields=fields)]


def test_a_plugin_adds_a_provider_type(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, openai_stand_in: tuple[str, Any],
    caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    from palestra import builtin_plugin, plugins

    url, _ = openai_stand_in
    file = tmp_path / "endpoints.json"
    record = {"model_name": "scripted", "api_type": "acme", "api_base": url + "/v1",
              "tenant": "t1"}  # fmt: skip
    file.write_text(json.dumps({"acme-chat": record}))
    with pytest.raises(InvalidRequestError, match="unknown api_type 'acme'"):
        load_endpoint_file(file)
    loaded = (("builtin", builtin_plugin), ("acme", EchoProviderPlugin))
    monkeypatch.setattr(plugins, "load_plugins", lambda: loaded)
    plugins.providers.cache_clear()
    try:
        with caplog.at_level(logging.WARNING):
            (endpoint,) = load_endpoint_file(file)
        assert endpoint.extra == {"tenant": "t1"} and "unknown field" not in caplog.text
        assert text_of(run(remote_backend(endpoint), ASK)) == "Scripted scripted heard: Hi"
    finally:
        monkeypatch.undo()
        plugins.reset()


def test_palestra_providers_lists_every_fastchat_type() -> None:
    from typer.testing import CliRunner

    from palestra.cli.main import app

    result = CliRunner().invoke(app, ["providers"])
    assert result.exit_code == 0
    served, _, retired = result.output.partition("no longer work")
    fastchat = {"openai", "openai_no_stream", "openai_o1", "anthropic", "anthropic_message",
                "anthropic_message_vertex", "gemini", "gemini_no_stream", "mistral", "nvidia",
                "ai2", "vertex", "yandexgpt", "cohere", "reka"}  # fmt: skip
    listed = {line.split()[0] for line in served.splitlines() if line and not line[0].isspace()}
    assert fastchat | {"litellm"} <= listed
    assert "openai_assistant" in retired and "bard" in retired


def test_request_options_and_vllm_extras_reach_hosted_models(
    openai_stand_in: tuple[str, Any],
) -> None:
    """reasoning_effort, service_tier and verbosity go to the provider; logit_bias as
    OpenAI's; vLLM's extras in the body (a vLLM server reads them). Providers whose APIs
    have no such fields refuse them with a 400 naming the endpoint."""
    url, app = openai_stand_in
    backend = remote_backend(RemoteEndpoint("s", model_id="scripted", api_base=url + "/v1"))
    options = {"reasoning_effort": "low", "service_tier": "flex", "verbosity": "high"}
    asked = Conversation(ASK.messages, provider_options=options)
    run(backend, asked, min_p=0.1, min_tokens=3, logit_bias=((42, -100.0),), top_k=5)
    body = app.state.bodies[-1]
    assert {k: body[k] for k in options} == options
    assert body["logit_bias"] == {"42": -100.0}
    assert (body["min_p"], body["min_tokens"], body["top_k"]) == (0.1, 3, 5)
    assert "parallel_tool_calls" not in body  # OpenAI refuses it without tools

    from tests.fakes.anthropic_server import API_KEY

    claude = remote_backend(
        RemoteEndpoint("c", api_type="anthropic", api_base=url, api_key=Secret(API_KEY))
    )
    with pytest.raises(UnsupportedError) as caught:
        run(claude, ASK, min_p=0.1)
    assert "anthropic endpoint 'c' takes no min_p" in caught.value.message
    assert caught.value.http_status == 400
