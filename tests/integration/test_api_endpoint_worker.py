"""API-provider models behind a Palestra worker: `palestra worker
--register-api-endpoint-file` serves a hosted model (here a scripted OpenAI-compatible
stand-in) through the controller and Palestra's own API, like a local one; a provider that
cannot be reached answers in OpenAI's error envelope. A second worker serves FastChat's
LM-Arena demo file as it is (an Azure deployment and a reasoning model), and `palestra judge
answer --endpoint-file` answers with one of its models."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest
from fastapi import FastAPI
from openai import OpenAI

from tests.fakes.openai_server import build_openai_app
from tests.fakes.server import serve_in_thread
from tests.fakes.tools import WEATHER
from tests.integration.cluster import CLI, Cluster, Process, free_port, registered, wait_for
from tests.unit.backends.test_providers import demo_file


@pytest.fixture(scope="module")
def fake_app() -> FastAPI:
    return build_openai_app()


@pytest.fixture(scope="module")
def served(
    tmp_path_factory: pytest.TempPathFactory, fake_app: FastAPI
) -> Iterator[tuple[str, list[Process]]]:
    """Palestra's API URL, and the two providers-only workers behind it."""
    folder = tmp_path_factory.mktemp("endpoints")
    with serve_in_thread(fake_app) as fake_url:
        endpoints = {
            "hosted": {"model_name": "scripted", "api_base": fake_url + "/v1"},
            "gone": {"model_name": "x", "api_base": f"http://127.0.0.1:{free_port()}/v1"},
            "down": {"model_name": "dead", "api_base": fake_url + "/v1", "retries": 1},
        }
        file = Path(folder) / "endpoints.json"
        file.write_text(json.dumps(endpoints))
        demo = demo_file(Path(folder), fake_url)
        cluster = Cluster()
        try:
            controller = cluster.controller()
            workers = [
                cluster.worker(controller.url, "--register-api-endpoint-file", str(file)),
                cluster.worker(controller.url, "--register-api-endpoint-file", str(demo)),
            ]
            wait_for(registered(controller, 2), 30, "worker registration")
            yield cluster.api(controller.url).url + "/v1", workers
        finally:
            cluster.stop()


@pytest.fixture(scope="module")
def api_url(served: tuple[str, list[Process]]) -> str:
    return served[0]


def test_hosted_model_through_palestra(api_url: str) -> None:
    client = OpenAI(base_url=api_url, api_key="none")
    listed = sorted(m.id for m in client.models.list())
    assert listed == ["Checklist-GPT-4-0125-Preview", "Checklist-GPT-o1", "down", "gone", "hosted"]
    reply = client.chat.completions.create(
        model="hosted",
        messages=[{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}],
    )
    assert reply.choices[0].message.content == "Scripted scripted heard: Hi"
    assert reply.usage is not None and reply.usage.completion_tokens == 4
    stream = client.chat.completions.create(
        model="hosted", messages=[{"role": "user", "content": "Hey you"}], stream=True
    )
    text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert text == "Scripted scripted heard: Hey you"


def test_a_providers_only_worker_never_loads_torch(served: tuple[str, list[Process]]) -> None:
    api, workers = served
    client = OpenAI(base_url=api, api_key="none")
    reply = client.chat.completions.create(
        model="hosted", messages=[{"role": "user", "content": "Hi"}]
    )
    assert reply.choices[0].message.content
    for worker in workers:  # no local model: neither torch nor its ~240 MB
        maps = Path(f"/proc/{worker.popen.pid}/maps")
        if maps.exists():  # Linux
            assert "libtorch" not in maps.read_text()


def test_unreachable_provider_is_an_error_envelope(api_url: str) -> None:
    client = OpenAI(base_url=api_url, api_key="none", max_retries=0)
    with pytest.raises(openai.APIStatusError) as caught:
        client.chat.completions.create(model="gone", messages=[{"role": "user", "content": "x"}])
    assert caught.value.status_code == 502
    error = caught.value.response.json()["error"]  # OpenAI's envelope
    assert error["type"] == "backend_error" and error["code"] == "provider_unreachable"
    assert "cannot reach openai endpoint 'gone'" in error["message"]


def test_a_failing_provider_is_retried_then_its_status_in_the_envelope(
    api_url: str, fake_app: FastAPI
) -> None:
    client = OpenAI(base_url=api_url, api_key="none", max_retries=0)
    before = fake_app.state.failures.get("dead", 0)
    with pytest.raises(openai.APIStatusError) as caught:
        client.chat.completions.create(model="down", messages=[{"role": "user", "content": "x"}])
    assert caught.value.status_code == 503
    error = caught.value.response.json()["error"]
    assert "answered 503: The server is overloaded" in error["message"]
    assert fake_app.state.failures["dead"] - before == 2  # tried, then once more


def test_tools_reach_a_hosted_model_and_its_calls_come_back(api_url: str) -> None:
    """The conversation seam: tools, tool choice, the assistant's calls and the tool's
    answer go to the provider as they are; its native calls come back in OpenAI's shape,
    streamed and not."""
    client = OpenAI(base_url=api_url, api_key="none", max_retries=0)
    ask = [{"role": "user", "content": "Weather in Oslo?"}]
    reply = client.chat.completions.create(
        model="hosted", messages=ask, tools=[WEATHER], tool_choice="auto"
    )
    choice = reply.choices[0]
    assert choice.finish_reason == "tool_calls" and choice.message.tool_calls
    call = choice.message.tool_calls[0]
    assert call.id == "call_abc123" and call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {"text": "Weather in Oslo?"}

    stream = client.chat.completions.create(
        model="hosted", messages=ask, tools=[WEATHER], stream=True
    )
    chunks = [c for c in stream if c.choices]
    streamed = [t for c in chunks for t in (c.choices[0].delta.tool_calls or [])]
    assert [t.function.name for t in streamed if t.function] == ["get_weather"]
    assert chunks[-1].choices[0].finish_reason == "tool_calls"

    history = [
        *ask,
        {"role": "assistant", "content": None, "tool_calls": [call.model_dump()]},
        {"role": "tool", "tool_call_id": call.id, "content": "sunny, 4 C"},
    ]
    answer = client.chat.completions.create(model="hosted", messages=history, tools=[WEATHER])
    assert answer.choices[0].message.content == "The tool said: sunny, 4 C"
    assert answer.choices[0].finish_reason == "stop"


def test_the_provider_sees_the_conversation_as_sent(api_url: str, fake_app: FastAPI) -> None:
    """What reached the stand-in: the tools, the choice and the tool turn, untouched (a
    tool message answering no call would have been the provider's 400)."""
    client = OpenAI(base_url=api_url, api_key="none", max_retries=0)
    forced = {"type": "function", "function": {"name": "get_weather"}}
    reply = client.chat.completions.create(
        model="hosted",
        messages=[{"role": "user", "content": "Oslo"}],
        tools=[WEATHER],
        tool_choice=forced,
    )
    assert reply.choices[0].message.tool_calls[0].function.name == "get_weather"
    sent = fake_app.state.bodies[-1]
    assert sent["tools"] == [WEATHER] and sent["tool_choice"] == forced
    assert sent["messages"] == [{"role": "user", "content": "Oslo"}]
    with pytest.raises(openai.BadRequestError, match="must answer a preceding tool call"):
        client.chat.completions.create(
            model="hosted",
            messages=[
                {"role": "user", "content": "Oslo"},
                {"role": "tool", "tool_call_id": "call_nobody_made", "content": "x"},
            ],
            tools=[WEATHER],
        )


def test_fastchat_demo_models_answer_through_palestra(api_url: str, fake_app: FastAPI) -> None:
    """Both models of the unchanged demo file: the Azure deployment (api-key header,
    api-version query) and the reasoning model (the stand-in refuses temperature, top_p,
    max_tokens and system messages, as the service does), streamed and not."""
    client = OpenAI(base_url=api_url, api_key="none", max_retries=0)
    ask = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]
    for model in ("Checklist-GPT-4-0125-Preview", "Checklist-GPT-o1"):
        reply = client.chat.completions.create(
            model=model, messages=ask, temperature=0.7, top_p=0.9, max_tokens=50
        )
        assert reply.choices[0].message.content == f"Scripted {model} heard: Hi"
        stream = client.chat.completions.create(model=model, messages=ask, stream=True)
        text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
        assert text == f"Scripted {model} heard: Hi"
    reasoning = fake_app.state.bodies[-1]
    assert (
        reasoning["model"] == "Checklist-GPT-o1" and reasoning["messages"][0]["role"] == "developer"
    )


def test_the_judge_answers_with_a_model_of_the_demo_file(tmp_path: Path, fake_app: FastAPI) -> None:
    import subprocess

    with serve_in_thread(fake_app) as fake_url:
        demo = demo_file(tmp_path, fake_url)
        bench = tmp_path / "bench"
        bench.mkdir()
        questions = [{"question_id": 1, "category": "writing", "turns": ["Hello?", "And?"]}]
        (bench / "question.jsonl").write_text("\n".join(json.dumps(q) for q in questions))
        done = subprocess.run(
            [*CLI, "judge", "answer", "--model", "Checklist-GPT-o1", "--endpoint-file",
             str(demo), "--bench", str(bench)],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
    assert done.returncode == 0, done.stderr
    (answer,) = [
        json.loads(line)
        for line in (bench / "model_answer" / "Checklist-GPT-o1.jsonl").read_text().splitlines()
    ]
    turns = answer["choices"][0]["turns"]
    assert turns == [
        "Scripted Checklist-GPT-o1 heard: Hello?",
        "Scripted Checklist-GPT-o1 heard: And?",
    ]
