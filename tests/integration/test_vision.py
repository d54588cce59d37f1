"""A local vision model served end to end: a tiny LLaVA (`tests/fakes/vision_model.py`)
published on the Hub stand-in, loaded by a worker from its Hub id next to the text-only
bundled model, asked through the official `openai` SDK with images as data: URLs and as
http URLs the API server fetches."""

from __future__ import annotations

import base64
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from palestra.models.inspect import bundled_model_path
from tests.fakes.hub_server import FakeHub, build_hub_app
from tests.fakes.image_server import build_image_app
from tests.fakes.server import serve_in_thread
from tests.fakes.vision_model import IMAGE_TOKENS, build_tiny_vision_model, png_bytes
from tests.integration.cluster import Cluster, Process, registered, wait_for

QUESTION = "What is the capital of Italy?"


@pytest.fixture(scope="module")
def site() -> Iterator[str]:
    with serve_in_thread(build_image_app()) as url:
        yield url


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Process]:
    folder = build_tiny_vision_model(tmp_path_factory.mktemp("tiny-llava"))
    hub = FakeHub()
    hub.publish("acme/tiny-llava", folder)
    with serve_in_thread(build_hub_app(hub)) as hub_url:
        environment = {k: v for k, v in os.environ.items() if not k.startswith("HF_")}
        home = str(tmp_path_factory.mktemp("hf"))
        cluster = Cluster(env={"HF_ENDPOINT": hub_url, "HF_HOME": home})
        cluster.env = {**environment, **cluster.env}
        try:
            controller = cluster.controller()
            cluster.worker(
                controller.url,
                *("--model-path", "acme/tiny-llava"),
                *("--model-path", str(bundled_model_path())),
            )
            wait_for(registered(controller, 1), 30, "worker registration")
            yield cluster.api(controller.url, "--fetch-private-image-urls")
        finally:
            cluster.stop()


@pytest.fixture(scope="module")
def client(api: Process) -> openai.OpenAI:
    return openai.OpenAI(base_url=api.url + "/v1", api_key="x", max_retries=0)


def _ask(url: str) -> list[dict[str, Any]]:
    return [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": QUESTION},
                {"type": "image_url", "image_url": {"url": url, "detail": "low"}},
            ],
        }
    ]


def _data_url(data: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(data).decode()


def test_an_image_gets_a_streamed_answer(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(
        model="tiny-llava",
        messages=_ask(_data_url(png_bytes())),  # type: ignore[arg-type]
        temperature=0,
        max_tokens=24,
        stream=True,
        stream_options={"include_usage": True},
    )
    deltas, finish, usage = [], None, None
    for chunk in stream:
        for choice in chunk.choices:
            deltas.append(choice.delta.content or "")
            finish = choice.finish_reason or finish
        usage = chunk.usage or usage
    assert len([d for d in deltas if d]) > 1  # streamed, not one piece
    assert "Rome" in "".join(deltas) and finish == "stop"
    text_only = client.chat.completions.create(
        model="tiny-llava", messages=[{"role": "user", "content": QUESTION}], max_tokens=24
    )
    assert usage is not None and text_only.usage is not None
    # the image's tokens ("<image>\n" becomes 16 image tokens and a newline) are counted
    assert usage.prompt_tokens >= text_only.usage.prompt_tokens + IMAGE_TOKENS


def test_an_image_url_is_fetched_by_the_api_server(client: openai.OpenAI, site: str) -> None:
    reply = client.chat.completions.create(
        model="tiny-llava", messages=_ask(site + "/picture.png"), temperature=0, max_tokens=24
    )  # type: ignore[arg-type]
    assert "Rome" in (reply.choices[0].message.content or "")
    with pytest.raises(openai.BadRequestError, match=r"image 1: .*not a PNG, JPEG, GIF or WebP"):
        client.chat.completions.create(
            model="tiny-llava", messages=_ask(site + "/page.html"), max_tokens=4
        )  # type: ignore[arg-type]


def test_an_image_through_the_responses_api(client: openai.OpenAI, site: str) -> None:
    content = [
        {"type": "input_text", "text": QUESTION},
        {"type": "input_image", "image_url": _data_url(png_bytes()), "detail": "low"},
    ]
    with client.responses.stream(
        model="tiny-llava",
        input=[{"role": "user", "content": content}],  # type: ignore[misc]
        temperature=0,
        max_output_tokens=24,
    ) as stream:
        deltas = [e.delta for e in stream if e.type == "response.output_text.delta"]
        response = stream.get_final_response()
    assert "Rome" in "".join(deltas) == response.output_text
    text_only = client.responses.create(model="tiny-llava", input=QUESTION, max_output_tokens=4)
    assert response.usage and text_only.usage
    assert response.usage.input_tokens >= text_only.usage.input_tokens + IMAGE_TOKENS
    fetched = [{"type": "input_text", "text": QUESTION},
               {"type": "input_image", "image_url": site + "/picture.png"}]  # fmt: skip
    reply = client.responses.create(
        model="tiny-llava", input=[{"role": "user", "content": fetched}],  # type: ignore[misc]
        temperature=0, max_output_tokens=24,
    )  # fmt: skip
    assert "Rome" in reply.output_text


def test_a_text_only_model_refuses_images_naming_itself(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError, match="'palestra-tiny' does not accept images"):
        client.chat.completions.create(
            model="palestra-tiny", messages=_ask(_data_url(png_bytes())), max_tokens=4
        )  # type: ignore[arg-type]


def test_bad_image_parts_are_400s(api: Process) -> None:
    for content, error in [
        (
            [{"type": "image_url", "image_url": {"url": "ftp://x/y.png"}}],
            "data: URL or an http(s) URL",
        ),
        ([{"type": "input_audio", "input_audio": {"data": "", "format": "wav"}}], "input_audio"),
    ]:
        body = {"model": "tiny-llava", "messages": [{"role": "user", "content": content}]}
        answer = httpx.post(api.url + "/v1/chat/completions", json=body, timeout=30)
        assert answer.status_code == 400 and error in answer.text
    body = {
        "model": "tiny-llava",
        "messages": [
            {"role": "user", "content": "hi"},
            {"role": "assistant", "content": [_ask("data:,")[0]["content"][1]]},
        ],
    }
    answer = httpx.post(api.url + "/v1/chat/completions", json=body, timeout=30)
    assert answer.status_code == 400 and "belong in user messages" in answer.text


def test_models_list_says_which_take_images(api: Process) -> None:
    listed = httpx.get(api.url + "/v1/models", timeout=10).json()["data"]
    kinds = {m["id"]: m["input_modalities"] for m in listed}
    assert kinds == {"tiny-llava": ["text", "image"], "palestra-tiny": ["text"]}


def test_the_folder_is_what_the_hub_has(tmp_path: Path) -> None:
    """The stand-in model loads through transformers' image-text-to-text auto classes (a
    check on the test's own model, so failures above point at Palestra)."""
    from transformers import AutoModelForImageTextToText, AutoProcessor

    folder = build_tiny_vision_model(tmp_path)
    assert type(AutoModelForImageTextToText.from_pretrained(folder)).__name__ == (
        "LlavaForConditionalGeneration"
    )
    assert AutoProcessor.from_pretrained(folder).chat_template
