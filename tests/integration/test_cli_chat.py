"""`palestra chat` driven through a pipe with the bundled model, as a script would, and the
CLI's one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

CLI = [sys.executable, "-m", "palestra.cli.main"]


def chat(lines: list[str], *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*CLI, "chat", "--temperature", "0", "--max-new-tokens", "64", *args],
        input="\n".join(lines) + "\n",
        capture_output=True,
        text=True,
        timeout=300,
        cwd=cwd,
    )


def test_bundled_model_answers_through_a_pipe(tmp_path: Path) -> None:
    saved = tmp_path / "conversation.json"
    result = chat(
        [
            "Hello! Who are you?",
            "What is the capital of France?",
            "And Spain?",  # needs the history
            "What is 7 plus 5?",
            f"!!save {saved}",
            "!!exit",
            "this line is never read",
        ]
    )
    assert result.returncode == 0, result.stderr
    replies = result.stdout.strip().splitlines()
    assert len(replies) == 4, result.stdout
    assert "Palestra" in replies[0] and replies[0].endswith((".", "?", "!"))
    assert "Paris" in replies[1]
    assert "Madrid" in replies[2]
    assert replies[3].rstrip(".").endswith("12")
    data = json.loads(saved.read_text())
    assert [m["role"] for m in data["messages"]] == ["user", "assistant"] * 4
    assert data["messages"][2] == {"role": "user", "content": "What is the capital of France?"}


def test_default_flags_answer_sensibly() -> None:
    """The defaults (temperature 0.7, 512 new tokens: the whole context) keep the prompt."""
    result = subprocess.run(
        [*CLI, "chat", "--seed", "1"],
        input="What color is a banana?\n",
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert "yellow" in result.stdout


def test_load_reset_remove_and_regen(tmp_path: Path) -> None:
    saved = tmp_path / "history.json"
    saved.write_text(
        json.dumps(
            {
                "messages": [
                    {"role": "user", "content": "What is the capital of Japan?"},
                    {"role": "assistant", "content": "The capital of Japan is Tokyo."},
                ]
            }
        )
    )
    result = chat(
        [f"!!load {saved}", "What about Peru?", "!!regen", "!!reset", "!!remove", "Thanks!"]
    )
    assert result.returncode == 0, result.stderr
    replies = result.stdout.strip().splitlines()
    assert "Lima" in replies[0] and replies[1] == replies[0]  # regen at temperature 0
    assert "welcome" in replies[2].lower()
    assert "nothing to remove" in result.stderr


def test_debug_prints_the_exact_prompt_and_system_is_used() -> None:
    result = chat(["Hi!"], "--debug", "--system", "You are a helpful assistant.")
    assert result.returncode == 0, result.stderr
    assert (
        "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\nHi!"
        "<|im_end|>\n<|im_start|>assistant\n"
    ) in result.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--model-path", "/no/such/model"], "is neither a folder nor a Hugging Face Hub id"),
        (["--conv-template", "no-such-template"], "unknown chat template"),
        (["--device", "quantum"], "unknown device"),
        (["--load-8bit", "--device", "cpu"], "needs a CUDA GPU"),
        (["--temperature", "-1"], "temperature must be >= 0"),
        (["--max-batch-size", "0"], "--max-batch-size: Input should be greater than or equal to 1"),
        (["--threads", "-1"], "--threads: Input should be greater than or equal to 0"),
    ],
)
def test_bad_input_is_one_actionable_line(args: list[str], message: str) -> None:
    result = chat(["Hello"], *args)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("palestra: error:")]
    assert len(errors) == 1 and message in errors[0]


def test_models_and_templates_commands() -> None:
    listing = subprocess.run([*CLI, "models", "--json"], capture_output=True, text=True, check=True)
    ids = {family["id"] for family in json.loads(listing.stdout)}
    assert {"palestra-tiny", "vicuna", "llama-3", "qwen", "bge", "fastchat-t5"} <= ids
    show = subprocess.run(
        [*CLI, "models", "show", "palestra-tiny"], capture_output=True, text=True, check=True
    )
    assert json.loads(show.stdout)["family"] == "palestra-tiny"
    rendered = subprocess.run(
        [*CLI, "templates", "show", "chatml"], capture_output=True, text=True, check=True
    )
    assert (
        "<|im_start|>user\nWhat is 2 plus 2?<|im_end|>\n<|im_start|>assistant\n" in rendered.stdout
    )
