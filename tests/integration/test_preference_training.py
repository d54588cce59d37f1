"""From votes to a better model, end to end with the real CLI: a demonstration arena whose
voters prefer answers that end with a polite closing, its preferences, DPO on the bundled
model, and the tuned folder served beside the base and a control trained on shuffled
labels; only the tuned model closes its answers to questions it never saw. Also KTO, ORPO
and LoRA DPO writing servable folders."""

from __future__ import annotations

import json
import random
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import openai
import pytest

from palestra.models.inspect import bundled_model_path
from palestra.train.demo_votes import CLOSING, closing_rate, demo_questions
from tests.integration.cluster import CLI, Cluster, registered, wait_for

pytest.importorskip("trl")

DPO = ["--lr", "2e-4", "--epochs", "2", "--batch-size", "8", "--device", "cpu"]


def palestra(*args: str, cwd: Path) -> str:
    done = subprocess.run([*CLI, *args], cwd=cwd, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


@pytest.fixture(scope="module")
def arena(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with the demonstration arena's store and its preferences."""
    folder = tmp_path_factory.mktemp("votes")
    done = subprocess.run(
        [CLI[0], "-m", "palestra.train.demo_votes", "arena.db"],
        cwd=folder, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    said = palestra("arena", "preferences", "arena.db", "prefs.jsonl", cwd=folder)
    assert "battles read" in said and "records" in said
    return folder


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
    assert rates["tuned"] >= 0.6  # measured 1.0 (40 of 40 questions)


def test_kto_orpo_and_lora_dpo_write_servable_folders(arena: Path) -> None:
    pytest.importorskip("peft")
    from palestra.train.preference import PreferenceConfig, run_preference

    palestra(
        "arena", "preferences", "arena.db", "labelled.jsonl", "--format", "unpaired", cwd=arena
    )
    # a multi-turn battle whose sides parted at the first answer: the user's second
    # message is in both answers, and is masked out of them
    turn = {"role": "user", "content": "And of Spain?"}
    multi = {
        "prompt": [{"role": "user", "content": "What is the capital of Italy?"}],
        "chosen": [{"role": "assistant", "content": "Rome."}, turn,
                   {"role": "assistant", "content": "Madrid."}],
        "rejected": [{"role": "assistant", "content": "Paris."}, turn,
                     {"role": "assistant", "content": "Lisbon."}],
    }  # fmt: skip
    single = (arena / "prefs.jsonl").read_text().splitlines()[:4]
    (arena / "multi.jsonl").write_text("\n".join([json.dumps(multi)] * 4 + single) + "\n")
    short = {"max_steps": 3, "batch_size": 4, "device": "cpu", "logging_steps": 1}
    runs = {
        "kto": ("labelled.jsonl", {}),
        "orpo": ("prefs.jsonl", {}),
        "dpo": ("multi.jsonl", {"lora": True, "bf16": True}),
    }
    for method, (data, extra) in runs.items():
        out = arena / f"short-{method}"
        config = PreferenceConfig(data=str(arena / data), out=str(out), **short, **extra)
        result = run_preference(method, config)
        assert result.steps == 3 and result.losses, method
        assert (out / "tokenizer_config.json").is_file()
        assert (out / "generation_config.json").is_file()
        weights = "adapter_model.safetensors" if extra.get("lora") else "model.safetensors"
        assert (out / weights).is_file(), method
        assert json.loads((out / "palestra_training.json").read_text())["method"] == method
        if method == "dpo":  # 3 steps over 8 pairs, 4 of them multi-turn
            assert result.turns_masked > 0 and result.mask_mismatches == 0
    # a pairs-only method refuses labelled answers with what to run instead
    done = subprocess.run(
        [*CLI, "train", "dpo", "labelled.jsonl", "--out", "x", "--device", "cpu"],
        cwd=arena, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 2
    assert "--format pairs" in done.stderr and "Traceback" not in done.stderr


def test_a_reward_model_from_the_votes_judges_pairs(arena: Path) -> None:
    """`train reward` on the arena's pairs, then `judge grade --judge-reward-model`: on
    held-out questions the polite answer wins, in both orders."""
    from palestra.train.demo_votes import answers

    said = palestra(
        "train", "reward", "prefs.jsonl", "--out", "rm", "--lr", "1e-4", "--device", "cpu",
        cwd=arena,
    )  # fmt: skip
    assert "--judge-reward-model rm" in said
    _, held_out = demo_questions()
    held_out = held_out[:20]
    bench = arena / "bench"
    (bench / "model_answer").mkdir(parents=True)
    (bench / "question.jsonl").write_text(
        "".join(
            json.dumps({"question_id": i, "category": "writing", "turns": [q]}) + "\n"
            for i, q in enumerate(held_out)
        )
    )
    plain = answers(str(bundled_model_path()), held_out)
    for model, replies in (("plain", plain), ("polite", [f"{r} {CLOSING}" for r in plain])):
        (bench / "model_answer" / f"{model}.jsonl").write_text(
            "".join(
                json.dumps(
                    {"question_id": i, "model_id": model, "choices": [{"index": 0, "turns": [r]}]}
                ) + "\n"
                for i, r in enumerate(replies)
            )
        )  # fmt: skip
    palestra(
        "judge", "grade", "--mode", "pairwise-all", "--judge-reward-model", "rm",
        "--bench", "bench", cwd=arena,
    )  # fmt: skip
    records = [
        json.loads(line)
        for line in (bench / "model_judgment" / "rm_pair.jsonl").read_text().splitlines()
    ]
    assert len(records) == 20
    polite_wins = sum(r["g1_winner"] == r["g2_winner"] == "polite" for r in records)
    print(f"the reward model picks the polite answer on {polite_wins} of {len(records)}")
    assert polite_wins >= 18, [r["g1_judgment"] for r in records]
    refused = subprocess.run(
        [*CLI, "judge", "grade", "--mode", "single", "--judge-reward-model", "rm",
         "--bench", "bench"],
        cwd=arena, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert refused.returncode == 2 and "judges pairs" in refused.stderr
