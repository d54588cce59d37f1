"""The OpenAI-compatible API against real processes (controller, worker with the bundled
model, API server), through the official `openai` SDK and raw httpx."""

from __future__ import annotations

import asyncio
import base64
import json
import struct

import httpx
import openai
import pytest

from tests.integration.cluster import Process, wait_for

MODEL = "palestra-tiny"


@pytest.fixture(scope="module")
def client(stack: dict[str, Process]) -> openai.OpenAI:
    return openai.OpenAI(base_url=stack["api"].url + "/v1", api_key="unused", max_retries=0)


def ask(question: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": question}]


def test_models(client: openai.OpenAI) -> None:
    assert [m.id for m in client.models.list().data] == [MODEL]
    assert client.models.retrieve(MODEL).id == MODEL
    with pytest.raises(openai.NotFoundError, match="served models: palestra-tiny"):
        client.models.retrieve("gpt-17")


def test_chat_completion(client: openai.OpenAI) -> None:
    reply = client.chat.completions.create(
        model=MODEL, temperature=0, messages=ask("What is the capital of France?")
    )
    assert reply.choices[0].message.content == "The capital of France is Paris."
    assert reply.choices[0].finish_reason == "stop"
    assert reply.usage is not None and reply.usage.completion_tokens > 0
    assert reply.id.startswith("chatcmpl-")


def test_multi_turn_and_system(client: openai.OpenAI) -> None:
    reply = client.chat.completions.create(
        model=MODEL,
        temperature=0,
        messages=[
            {"role": "system", "content": "You are a helpful assistant."},
            {"role": "user", "content": "What is the capital of Japan?"},
            {"role": "assistant", "content": "The capital of Japan is Tokyo."},
            {"role": "user", "content": "What about Peru?"},
        ],
    )
    assert "Lima" in (reply.choices[0].message.content or "")


def test_streaming_with_usage_and_n(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(
        model=MODEL,
        messages=ask("What color is snow?"),
        temperature=0,
        n=2,
        stream=True,
        stream_options={"include_usage": True},
    )
    texts = {0: "", 1: ""}
    finishes, usage = {}, None
    for chunk in stream:
        if chunk.usage:
            usage = chunk.usage
        for choice in chunk.choices:
            texts[choice.index] += choice.delta.content or ""
            if choice.finish_reason:
                finishes[choice.index] = choice.finish_reason
    assert texts == {0: "Snow is white.", 1: "Snow is white."}
    assert finishes == {0: "stop", 1: "stop"}
    assert usage is not None and usage.completion_tokens == 2 * 5


def test_n_choices_share_the_prompt_computation(
    stack: dict[str, Process], client: openai.OpenAI
) -> None:
    def prefills() -> tuple[int, int]:  # (from scratch, resumed from a cached prefix)
        health = httpx.get(stack["worker"].url + "/health").json()["models"][0]
        return int(health["fresh_prefills"]), int(health["prefix_cache"]["hits"])

    before = prefills()
    reply = client.chat.completions.create(
        model=MODEL,
        messages=ask("Zebras aside, what is the capital of Norland and which river runs there?"),
        temperature=1.0,
        n=4,
        max_tokens=8,
    )
    assert len(reply.choices) == 4
    # The prompt was computed at most once: the other choices joined that prefill or
    # started from its cached key/values.
    after = prefills()
    fresh, resumed = after[0] - before[0], after[1] - before[1]
    assert fresh <= 1 and fresh + resumed >= 1


def test_async_client_streams(stack: dict[str, Process]) -> None:
    async def run() -> str:
        client = openai.AsyncOpenAI(base_url=stack["api"].url + "/v1", api_key="x")
        stream = await client.chat.completions.create(
            model=MODEL, messages=ask("What sound does a cow make?"), temperature=0, stream=True
        )
        return "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])

    assert asyncio.run(run()) == "A cow says moo."


def test_max_tokens_stop_and_seed(client: openai.OpenAI) -> None:
    short = client.chat.completions.create(
        model=MODEL, messages=ask("Who are you?"), temperature=0, max_completion_tokens=3
    )
    assert short.choices[0].finish_reason == "length"
    assert short.usage is not None and short.usage.completion_tokens == 3
    stopped = client.chat.completions.create(
        model=MODEL, messages=ask("Who are you?"), temperature=0, stop=[" Tiny"]
    )
    assert stopped.choices[0].message.content == "I am Palestra"
    seeded = [
        client.chat.completions.create(
            model=MODEL, messages=ask("Hello!"), temperature=1.5, seed=42, max_tokens=20
        )
        .choices[0]
        .message.content
        for _ in range(2)
    ]
    assert seeded[0] == seeded[1]


def test_chat_logprobs(client: openai.OpenAI) -> None:
    reply = client.chat.completions.create(
        model=MODEL, messages=ask("What is 2 plus 2?"), temperature=0, logprobs=True, top_logprobs=3
    )
    content = reply.choices[0].logprobs.content  # type: ignore[union-attr]
    assert "".join(t.token for t in content) == reply.choices[0].message.content
    assert all(len(t.top_logprobs) == 3 and t.logprob <= 0 for t in content)


def test_completions_echo_and_logprobs(client: openai.OpenAI) -> None:
    result = client.completions.create(
        model=MODEL,
        prompt="The capital of Italy is",
        max_tokens=5,
        temperature=0,
        echo=True,
        logprobs=2,
    )
    choice = result.choices[0]
    assert choice.text.startswith("The capital of Italy is Rome")
    assert choice.logprobs is not None and choice.logprobs.tokens[0] == " Rome"
    assert choice.logprobs.text_offset[0] == len("The capital of Italy is")
    several = client.completions.create(
        model=MODEL, prompt=["A cow says", "Snow is"], max_tokens=2, temperature=0, n=2
    )
    assert len(several.choices) == 4 and {c.index for c in several.choices} == {0, 1, 2, 3}


def test_embeddings(client: openai.OpenAI) -> None:
    result = client.embeddings.create(model=MODEL, input=["a cow", "a cow", "snow"])
    vectors = [d.embedding for d in result.data]
    assert len(vectors) == 3 and vectors[0] == pytest.approx(vectors[1])
    assert sum(v * v for v in vectors[2]) == pytest.approx(1.0, abs=1e-4)
    encoded = client.embeddings.create(model=MODEL, input="a cow", encoding_format="base64")
    raw = base64.b64decode(str(encoded.data[0].embedding))
    assert list(struct.unpack(f"<{len(raw) // 4}f", raw)) == pytest.approx(vectors[0], abs=1e-6)


def test_sse_framing(stack: dict[str, Process]) -> None:
    with httpx.stream(
        "POST",
        stack["api"].url + "/v1/chat/completions",
        json={"model": MODEL, "messages": ask("Hi!"), "stream": True, "max_tokens": 4},
        timeout=60,
    ) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        body = response.read().decode()
    events = body.split("\n\n")
    assert events[-1] == "" and events[-2] == "data: [DONE]"
    assert all(e.startswith("data: ") for e in events[:-1])
    first = json.loads(events[0][6:])
    assert first["object"] == "chat.completion.chunk"
    assert first["choices"][0]["delta"] == {"role": "assistant", "content": ""}


BAD_REQUESTS = [
    ("not json", 400, "invalid_json"),
    ({"model": MODEL, "messages": ask("x"), "max_tokens": -1}, 400, "invalid_value"),
    ({"model": MODEL, "messages": ask("x"), "max_tokens": 10**6}, 400, "context_length_exceeded"),
    ({"model": MODEL, "messages": ask("x"), "n": 0}, 400, "invalid_value"),
    ({"model": MODEL, "messages": ask("x"), "temperature": 3}, 400, "invalid_value"),
    ({"model": MODEL, "messages": ask("x"), "temperature": "hot"}, 400, "invalid_value"),
    ({"model": MODEL, "messages": []}, 400, "invalid_value"),
    ({"model": MODEL, "messages": ask("x"), "frobnicate": True}, 400, "unknown_parameter"),
    ({"model": MODEL, "messages": [{"role": "wizard", "content": "x"}]}, 400, "invalid_value"),
    ({"messages": ask("x")}, 400, "invalid_value"),
    ({"model": "nope", "messages": ask("x")}, 404, "model_not_found"),
]


@pytest.mark.parametrize(("body", "status", "code"), BAD_REQUESTS)
def test_bad_requests_get_the_envelope(
    stack: dict[str, Process], body: object, status: int, code: str
) -> None:
    url = stack["api"].url + "/v1/chat/completions"
    if isinstance(body, str):
        response = httpx.post(url, content=body, headers={"content-type": "application/json"})
    else:
        response = httpx.post(url, json=body)
    assert response.status_code == status
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["code"] == code and error["message"]
    # and the server keeps serving
    ok = httpx.post(url, json={"model": MODEL, "messages": ask("Hi"), "max_tokens": 2}, timeout=60)
    assert ok.status_code == 200


def test_context_overflow_names_both_numbers(stack: dict[str, Process]) -> None:
    response = httpx.post(
        stack["api"].url + "/v1/chat/completions",
        json={"model": MODEL, "messages": ask("x"), "max_tokens": 100_000},
    )
    message = response.json()["error"]["message"]
    assert "512" in message and "100000" in message


def test_tokenize_and_detokenize(stack: dict[str, Process]) -> None:
    url = stack["api"].url
    tokens = httpx.post(
        url + "/tokenize", json={"model": MODEL, "prompt": "A cow says moo."}
    ).json()
    assert tokens["count"] == len(tokens["tokens"]) > 0 and tokens["max_model_len"] == 512
    text = httpx.post(url + "/detokenize", json={"model": MODEL, "tokens": tokens["tokens"]}).json()
    assert text["prompt"] == "A cow says moo."


def test_workers_table_and_test_message(stack: dict[str, Process]) -> None:
    import subprocess
    import sys

    controller = stack["controller"].url
    table = subprocess.run(
        [
            sys.executable,
            "-m",
            "palestra.cli.main",
            "workers",
            "--json",
            "--controller-address",
            controller,
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    rows = json.loads(table.stdout)
    assert rows[0]["address"] == stack["worker"].url and rows[0]["models"] == [MODEL]
    message = subprocess.run(
        [
            sys.executable,
            "-m",
            "palestra.cli.main",
            "test-message",
            "--model",
            MODEL,
            "--controller-address",
            controller,
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    assert "Palestra" in message.stdout


def _metric(text: str, name: str, default: float | None = None, **labels: str) -> float:
    for line in text.splitlines():
        if line.startswith(name) and all(f'{k}="{v}"' in line for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    if default is not None:
        return default
    raise AssertionError(f"{name} {labels} not in /metrics")


def test_prometheus_metrics(stack: dict[str, Process], client: openai.OpenAI) -> None:
    url = stack["api"].url
    before = httpx.get(url + "/metrics").text
    worker_before = httpx.get(stack["worker"].url + "/metrics").text
    sent = _metric(
        before,
        "palestra_api_requests_total",
        0.0,
        endpoint="/v1/chat/completions",
        status="200",
    )
    stream = client.chat.completions.create(
        model=MODEL, messages=ask("Hi!"), stream=True, max_tokens=5, temperature=0
    )
    list(stream)
    httpx.post(url + "/v1/chat/completions", json={"model": MODEL, "messages": []})
    after = httpx.get(url + "/metrics").text
    assert (
        _metric(after, "palestra_api_requests_total", endpoint="/v1/chat/completions", status="200")
        == sent + 1
    )
    assert _metric(after, "palestra_api_errors_total", type="invalid_request_error") >= 1
    assert _metric(after, "palestra_api_time_to_first_token_seconds_count") >= 1
    assert _metric(after, "palestra_api_generated_tokens_total") >= 5
    assert _metric(after, "palestra_api_generation_tokens_per_second_count") >= 1
    # the controller's view: dispatch counts optimistically until the next heartbeat
    wait_for(
        lambda: _metric(httpx.get(url + "/metrics").text, "palestra_api_queue_length") == 0,
        10,
        "the queue length to return to 0",
    )
    worker = httpx.get(stack["worker"].url + "/metrics").text
    assert (
        _metric(worker, "palestra_worker_requests_total", endpoint="/generate", status="200") >= 1
    )

    # The worker times the same first token from its own receipt of the request: inside
    # the API server's span, so a shorter wait; the difference is the hop between them.
    def grew(text: str, was: str, name: str) -> float:
        return _metric(text, name, 0.0) - _metric(was, name, 0.0)

    ttft = "time_to_first_token_seconds"
    assert grew(worker, worker_before, f"palestra_worker_{ttft}_count") == 1
    assert grew(after, before, f"palestra_api_{ttft}_count") == 1
    assert (
        0
        < grew(worker, worker_before, f"palestra_worker_{ttft}_sum")
        < grew(after, before, f"palestra_api_{ttft}_sum")
    )
    generated = grew(after, before, "palestra_api_generated_tokens_total")
    assert grew(worker, worker_before, "palestra_worker_generated_tokens_total") == generated >= 1
    assert grew(worker, worker_before, "palestra_worker_generation_tokens_per_second_count") == 1


def test_response_format_json_schema(client: openai.OpenAI) -> None:
    schema = {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "city": {"enum": ["Paris", "Rome", "Oslo"]},
            "population_millions": {"type": "integer", "minimum": 0, "maximum": 40},
        },
        "required": ["city", "population_millions"],
    }
    reply = client.chat.completions.create(
        model=MODEL,
        messages=ask("What is the capital of France?"),
        max_tokens=60,
        response_format={"type": "json_schema", "json_schema": {"name": "city", "schema": schema}},
    )
    data = json.loads(reply.choices[0].message.content or "")
    assert data["city"] in {"Paris", "Rome", "Oslo"}
    assert isinstance(data["population_millions"], int)
    free = client.chat.completions.create(
        model=MODEL,
        messages=ask("Hello!"),
        max_tokens=20,
        temperature=0,
        response_format={"type": "json_object"},
    )
    assert (free.choices[0].message.content or "").startswith("{")


@pytest.mark.parametrize(
    "response_format",
    [
        {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "nonsense"}}},
        {"type": "json_schema"},
        {"type": "yaml"},
    ],
)
def test_bad_response_format_is_a_400(client: openai.OpenAI, response_format: dict) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(
            model=MODEL, messages=ask("x"), response_format=response_format
        )  # type: ignore[arg-type]
    body = info.value.body if isinstance(info.value.body, dict) else {}
    assert "response_format" in f"{info.value} {body.get('param')}"


def test_two_hundred_streaming_clients_with_default_settings_are_all_served(
    stack: dict[str, Process],
) -> None:
    """Past the batch size requests queue, as vLLM's and Ollama's do; none is refused."""
    body = {"model": MODEL, "messages": ask("Hi"), "max_tokens": 4, "ignore_eos": True,
            "stream": True, "stream_options": {"include_usage": True}}  # fmt: skip

    async def one(client: httpx.AsyncClient) -> tuple[int, int]:
        async with client.stream("POST", "/v1/chat/completions", json=body) as response:
            tokens = 0
            async for line in response.aiter_lines():
                if line.startswith("data: {"):
                    usage = json.loads(line[6:]).get("usage")
                    tokens = usage["completion_tokens"] if usage else tokens
            return response.status_code, tokens

    async def everyone() -> list[tuple[int, int]]:
        limits = httpx.Limits(max_connections=None)
        async with httpx.AsyncClient(base_url=stack["api"].url, timeout=120, limits=limits) as c:
            return await asyncio.gather(*(one(c) for _ in range(200)))

    results = asyncio.run(everyone())
    assert results == [(200, 4)] * 200
    status = httpx.get(stack["worker"].url + "/status").json()
    assert status["capacity"] == 256  # the default batch; memory admits the 200 at once
