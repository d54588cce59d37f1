"""One worker process hosting two models and a PEFT adapter that shares the first model's
weights, each served under its own name through the API."""

from __future__ import annotations

from pathlib import Path

import httpx
import openai
import pytest

from palestra.models.inspect import bundled_model_path
from tests.integration.cluster import Cluster, registered, wait_for


def _lora(base: Path, out: Path) -> Path:
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(base)
    config = LoraConfig(
        r=4, lora_alpha=64, target_modules=["q_proj", "v_proj"], init_lora_weights=False
    )
    get_peft_model(model, config).save_pretrained(out)
    return out


def test_two_models_and_an_adapter_in_one_worker(random_llama_dir: Path, tmp_path: Path) -> None:
    pytest.importorskip("peft")
    adapter = _lora(bundled_model_path(), tmp_path / "tiny-lora")
    cluster = Cluster()
    try:
        controller = cluster.controller()
        worker = cluster.worker(
            controller.url,
            "--model-path",
            str(bundled_model_path()),
            "--model-path",
            str(random_llama_dir),
            "--model-names",
            "tiny,rand",
            "--adapter",
            f"tiny-lora={adapter}",
            "--limit-concurrency",
            "2",
        )
        wait_for(registered(controller, 1), 30, "worker")
        status = httpx.get(worker.url + "/status").json()
        assert sorted(m["name"] for m in status["models"]) == ["rand", "tiny", "tiny-lora"]
        assert status["capacity"] == 4  # the adapter shares the base model's queue
        api = cluster.api(controller.url)
        client = openai.OpenAI(base_url=api.url + "/v1", api_key="x", max_retries=0)
        assert sorted(m.id for m in client.models.list().data) == ["rand", "tiny", "tiny-lora"]
        replies = {}
        for name in ("tiny", "tiny-lora", "rand"):
            reply = client.chat.completions.create(
                model=name,
                temperature=0,
                max_tokens=12,
                messages=[{"role": "user", "content": "What is the capital of France?"}],
            )
            replies[name] = reply.choices[0].message.content
        assert replies["tiny"] == "The capital of France is Paris."
        assert replies["tiny-lora"] != replies["tiny"]  # the adapter changes the model
        assert (
            replies["tiny"]
            == client.chat.completions.create(  # and the base is intact
                model="tiny",
                temperature=0,
                max_tokens=12,
                messages=[{"role": "user", "content": "What is the capital of France?"}],
            )
            .choices[0]
            .message.content
        )
    finally:
        cluster.stop()
