"""From votes to a better model, end to end with the real CLI: a demonstration arena whose
voters prefer answers that end with a polite closing, its preferences, DPO on the bundled
model, and the tuned folder served beside the base and a control trained on shuffled
labels; only the tuned model closes its answers to questions it never saw. (KTO, ORPO,
LoRA DPO and reward models: test_preference_methods.py.)"""

from __future__ import annotations

import json
import random
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import openai
import pytest

from palestra.models.inspect import bundled_model_path
from palestra.train.demo_votes import CLOSING, closing_rate, demo_questions
from tests.integration.cluster import Cluster, registered, wait_for
from tests.integration.preference_arena import demo_arena, palestra

pytest.importorskip("trl")


@pytest.fixture(scope="module")
def arena(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return demo_arena(tmp_path_factory)


DPO = ["--lr", "3e-4", "--epochs", "1", "--batch-size", "8", "--device", "cpu"]


def test_dpo_on_arena_votes_teaches_what_voters_prefer(arena: Path) -> None:
    records = [json.loads(line) for line in (arena / "prefs.jsonl").read_text().splitlines()]
    assert len(records) > 100
    assert all(r["chosen"][0]["content"].endswith(CLOSING) for r in records)
    assert all(not r["rejected"][0]["content"].endswith(CLOSING) for r in records)
    rng = random.Random(0)  # the control: the same pairs, the side picked by a coin
    with (arena / "shuffled.jsonl").open("w") as file:
        for record in records:
            if rng.random() < 0.5:
                record["chosen"], record["rejected"] = record["rejected"], record["chosen"]
            file.write(json.dumps(record) + "\n")

    with ThreadPoolExecutor(2) as pool:  # two cores: both runs at once
        runs = [
            pool.submit(palestra, "train", "dpo", "prefs.jsonl", "--out", "tuned", *DPO, cwd=arena),
            pool.submit(
                palestra, "train", "dpo", "shuffled.jsonl", "--out", "control", *DPO, cwd=arena
            ),
        ]
        said = runs[0].result()
        runs[1].result()
    assert "rewards/accuracies" in said
    summary = json.loads((arena / "tuned" / "palestra_training.json").read_text())
    assert summary["method"] == "dpo" and summary["steps"] > 0

    held_out = demo_questions()[1][:20]
    cluster = Cluster()
    try:
        controller = cluster.controller()
        cluster.worker(
            controller.url,
            "--model-path", str(bundled_model_path()),
            "--model-path", str(arena / "tuned"),
            "--model-path", str(arena / "control"),
            "--model-names", "base,tuned,control",
        )  # fmt: skip
        wait_for(registered(controller, 1), 60, "worker")
        api = cluster.api(controller.url)
        client = openai.OpenAI(base_url=api.url + "/v1", api_key="x", max_retries=0)

        def reply(model: str, question: str) -> str:
            answer = client.chat.completions.create(
                model=model,
                messages=[{"role": "user", "content": question}],
                temperature=0,
                max_tokens=32,
            )
            return answer.choices[0].message.content or ""

        rates = {}
        with ThreadPoolExecutor(8) as pool:
            for model in ("base", "tuned", "control"):
                replies = list(pool.map(lambda q, m=model: reply(m, q), held_out))
                rates[model] = closing_rate(replies)
    finally:
        cluster.stop()
    print(f"closing rate on {len(held_out)} held-out questions: {rates}")
    assert rates["base"] <= 0.05
    assert rates["control"] <= 0.1  # shuffled labels teach nothing
    assert rates["tuned"] >= 0.6  # measured 1.0 (20 of 20 questions, one epoch)
