"""Preference methods beside DPO on the demonstration arena: KTO on labelled answers, ORPO,
LoRA DPO on multi-turn pairs (user turns masked), each writing a servable folder; and a
reward model trained on the votes judging pairs through `palestra judge grade`."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from palestra.models.inspect import bundled_model_path
from palestra.train.demo_votes import CLOSING, demo_questions
from tests.integration.cluster import CLI
from tests.integration.preference_arena import demo_arena, palestra

pytest.importorskip("trl")


@pytest.fixture(scope="module")
def arena(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return demo_arena(tmp_path_factory)


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
