"""A GGUF file made by `palestra convert gguf`, served by `palestra worker --backend
llamacpp` and reached through the OpenAI SDK like any other model."""

from __future__ import annotations

import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import openai
import pytest

from palestra.models.inspect import bundled_model_path
from tests.integration.cluster import Cluster, registered, wait_for

pytest.importorskip("llama_cpp")


def test_converted_model_served_by_the_llamacpp_worker(tmp_path: Path) -> None:
    out = tmp_path / "tiny-q8_0.gguf"
    converted = subprocess.run(
        [sys.executable, "-m", "palestra.cli.main", "convert", "gguf", str(bundled_model_path()),
         "--out", str(out), "--outtype", "q8_0"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert converted.returncode == 0, converted.stderr
    assert str(out) in converted.stdout and "q8_0" in converted.stdout
    cluster = Cluster()
    try:
        controller = cluster.controller()
        worker = cluster.worker(
            controller.url, "--backend", "llamacpp", "--model-path", str(out), "--parallel", "2"
        )
        wait_for(registered(controller, 1), 60, "llama.cpp worker")
        health = httpx.get(worker.url + "/health").json()["models"][0]
        assert health["backend"] == "llamacpp" and health["parallel"] == 2
        api = cluster.api(controller.url)
        client = openai.OpenAI(base_url=api.url + "/v1", api_key="x", max_retries=0)
        assert [m.id for m in client.models.list().data] == ["tiny-chat"]

        stream = client.chat.completions.create(
            model="tiny-chat",
            messages=[{"role": "user", "content": "What is 3 plus 4?"}],
            temperature=0,
            stream=True,
            stream_options={"include_usage": True},
        )
        chunks = list(stream)
        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        assert "7" in text
        assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 3

        def ask(question: str) -> str:
            reply = client.chat.completions.create(
                model="tiny-chat",
                messages=[{"role": "user", "content": question}],
                temperature=0,
                max_tokens=24,
            )
            return reply.choices[0].message.content or ""

        questions = ["What color is a ripe banana?", "What sound does a cow make?"] * 3
        with ThreadPoolExecutor(6) as pool:
            answers = list(pool.map(ask, questions))
        assert answers[0::2] == [answers[0]] * 3 and answers[1::2] == [answers[1]] * 3
        assert "yellow" in answers[0].lower()

        # vLLM's extras on llama.cpp: min_tokens holds the stop token back, logit_bias bans
        # a token, min_p 1 keeps only the likeliest (sampling is then greedy).
        banana = [{"role": "user", "content": "What color is a ripe banana?"}]
        yellow = ask(banana[0]["content"])

        def extra(**body: object) -> tuple[str, int]:
            reply = client.chat.completions.create(
                model="tiny-chat", messages=banana, temperature=0, max_tokens=24, extra_body=body
            )  # type: ignore[arg-type]
            assert reply.usage is not None
            return reply.choices[0].message.content or "", reply.usage.completion_tokens

        short, used = extra()
        assert short == yellow and used < 24
        assert extra(min_tokens=24)[1] == 24
        first = httpx.post(
            api.url + "/tokenize", json={"model": "tiny-chat", "prompt": yellow}
        ).json()["tokens"][0]
        assert not extra(logit_bias={str(first): -100})[0].startswith(yellow[:3])
        sampled = client.chat.completions.create(
            model="tiny-chat", messages=banana, temperature=1.0, max_tokens=24,
            extra_body={"min_p": 1.0},
        )  # type: ignore[arg-type]  # fmt: skip
        assert sampled.choices[0].message.content == yellow

        with pytest.raises(openai.BadRequestError, match=r"llama\.cpp backend constrains"):
            extra(guided_choice=["yellow", "green"])

        with pytest.raises(openai.BadRequestError, match="logprobs"):
            client.chat.completions.create(
                model="tiny-chat",
                messages=[{"role": "user", "content": "Hi"}],
                logprobs=True,
            )

        penalised = client.chat.completions.create(
            model="tiny-chat", messages=banana, temperature=0.7, seed=1, max_tokens=12,
            frequency_penalty=0.5, presence_penalty=0.2, extra_body={"repetition_penalty": 1.2},
        )  # type: ignore[arg-type]  # fmt: skip
        assert penalised.usage is not None and penalised.usage.completion_tokens >= 1

        # Serving all of that, a llama.cpp worker never loaded torch (~240 MB, ~2 s).
        maps = Path(f"/proc/{worker.popen.pid}/maps")
        if maps.exists():  # Linux
            assert "libtorch" not in maps.read_text()
    finally:
        cluster.stop()
