"""API-provider models behind a Palestra worker: `palestra worker
--register-api-endpoint-file` serves a hosted model (here a scripted OpenAI-compatible
stand-in) through the controller and Palestra's own API, like a local one; a provider that
cannot be reached answers in OpenAI's error envelope."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest
from openai import OpenAI

from tests.fakes.openai_server import build_openai_app
from tests.fakes.server import serve_in_thread
from tests.integration.cluster import Cluster, free_port, registered, wait_for


@pytest.fixture(scope="module")
def api_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    folder = tmp_path_factory.mktemp("endpoints")
    with serve_in_thread(build_openai_app()) as fake_url:
        endpoints = {
            "hosted": {"model_name": "scripted", "api_base": fake_url + "/v1"},
            "gone": {"model_name": "x", "api_base": f"http://127.0.0.1:{free_port()}/v1"},
        }
        file = Path(folder) / "endpoints.json"
        file.write_text(json.dumps(endpoints))
        cluster = Cluster()
        try:
            controller = cluster.controller()
            cluster.worker(controller.url, "--register-api-endpoint-file", str(file))
            wait_for(registered(controller, 1), 30, "worker registration")
            yield cluster.api(controller.url).url + "/v1"
        finally:
            cluster.stop()


def test_hosted_model_through_palestra(api_url: str) -> None:
    client = OpenAI(base_url=api_url, api_key="none")
    assert sorted(m.id for m in client.models.list()) == ["gone", "hosted"]
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


def test_unreachable_provider_is_an_error_envelope(api_url: str) -> None:
    client = OpenAI(base_url=api_url, api_key="none", max_retries=0)
    with pytest.raises(openai.APIStatusError) as caught:
        client.chat.completions.create(model="gone", messages=[{"role": "user", "content": "x"}])
    assert caught.value.status_code == 502
    error = caught.value.response.json()["error"]  # OpenAI's envelope
    assert error["type"] == "backend_error" and error["code"] == "provider_unreachable"
    assert "cannot reach openai endpoint 'gone'" in error["message"]
