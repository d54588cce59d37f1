"""Models from the Hub, through the real huggingface_hub client pointed (HF_ENDPOINT) at a
loopback stand-in (`tests/fakes/hub_server.py`) with the repos a user meets: a chat model
with two revisions and a duplicate weight format, a gated repo, an adapter whose base is on
the Hub, a model that ships its own code. Every command runs as a user runs it, in a
subprocess with its own HF_HOME."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from palestra.models.inspect import bundled_model_path
from tests.fakes.hub_server import FakeHub, build_hub_app
from tests.fakes.server import serve_in_thread

CLI = [sys.executable, "-m", "palestra.cli.main"]

CODE = '''"""Remote code the Hub stand-in ships: a Llama under its own class name."""
from transformers import LlamaForCausalLM


class EchoForCausalLM(LlamaForCausalLM):
    shipped_by_the_repo = True
'''


def _bundled_files() -> dict[str, bytes]:
    folder = bundled_model_path()
    return {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()}


def _card(text: str) -> bytes:
    return f"---\nlicense: apache-2.0\n---\n# Tiny chat\n\n{text}\n".encode()


def _adapter_files(tmp: Path) -> dict[str, bytes]:
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(bundled_model_path())
    config = LoraConfig(r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    get_peft_model(model, config).save_pretrained(tmp)
    adapter_config = json.loads((tmp / "adapter_config.json").read_text())
    adapter_config["base_model_name_or_path"] = "acme/tiny-chat"  # the base is on the Hub
    (tmp / "adapter_config.json").write_text(json.dumps(adapter_config))
    return {p.name: p.read_bytes() for p in tmp.iterdir() if p.is_file()}


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[FakeHub, str]]:
    fake = FakeHub()
    files = _bundled_files()
    fake.publish("acme/tiny-chat", {**files, "README.md": _card("First release.")}, revision="v1")
    fake.publish(
        "acme/tiny-chat",
        # a pickled copy of the same weights: never fetched next to the safetensors
        {**files, "README.md": _card("Second release."), "pytorch_model.bin": b"\0" * 4096},
    )
    fake.publish("acme/gated-chat", files)
    fake.repos["acme/gated-chat"].gated = True
    config = json.loads(files["config.json"])
    config["auto_map"] = {"AutoModelForCausalLM": "modeling_echo.EchoForCausalLM"}
    fake.publish(
        "acme/echo-code",
        {**files, "config.json": json.dumps(config).encode(), "modeling_echo.py": CODE.encode()},
    )
    fake.publish("acme/tiny-lora", _adapter_files(tmp_path_factory.mktemp("lora")))
    with serve_in_thread(build_hub_app(fake)) as url:
        yield fake, url


@pytest.fixture()
def env(hub: tuple[FakeHub, str], tmp_path: Path) -> dict[str, str]:
    """A user's environment: the stand-in as the Hub, an empty cache of their own."""
    _, url = hub
    environment = {k: v for k, v in os.environ.items() if not k.startswith("HF_")}
    return environment | {"HF_ENDPOINT": url, "HF_HOME": str(tmp_path / "hf")}


def palestra(env: dict[str, str], *args: str, stdin: str = "") -> subprocess.CompletedProcess:
    return subprocess.run(
        [*CLI, *args], input=stdin, capture_output=True, text=True, timeout=300, env=env
    )


def snapshots(env: dict[str, str], repo: str) -> list[Path]:
    folder = Path(env["HF_HOME"]) / "hub" / f"models--{repo.replace('/', '--')}" / "snapshots"
    return sorted(folder.iterdir())


def test_chat_with_a_hub_id_downloads_once_then_works_offline(
    hub: tuple[FakeHub, str], env: dict[str, str]
) -> None:
    fake, _ = hub
    fake.requests.clear()
    fake.cut_once["model.safetensors"] = 12 << 20  # the connection breaks at 12 MiB
    result = palestra(
        env, "chat", "--model-path", "acme/tiny-chat", "--temperature", "0",
        stdin="What is the capital of France?\n",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "Paris" in result.stdout
    (snapshot,) = snapshots(env, "acme/tiny-chat")
    names = sorted(p.name for p in snapshot.iterdir())
    assert "model.safetensors" in names and "pytorch_model.bin" not in names
    weights = (snapshot / "model.safetensors").read_bytes()
    assert weights == (bundled_model_path() / "model.safetensors").read_bytes()
    ranges = [r for method, path, r in fake.requests if path.endswith("model.safetensors") and r]
    assert ranges and ranges[0].startswith("bytes=") and not ranges[0].startswith("bytes=0-")
    assert "Second release" in (snapshot / "README.md").read_text()

    offline = palestra(
        env | {"HF_HUB_OFFLINE": "1"}, "chat", "--model-path", "acme/tiny-chat",
        "--temperature", "0", stdin="And Spain?\n",
    )  # fmt: skip
    assert offline.returncode == 0, offline.stderr
    assert offline.stdout.strip()
    missing = palestra(env | {"HF_HUB_OFFLINE": "1"}, "pull", "acme/echo-code")
    assert missing.returncode == 2
    assert "not in the Hugging Face cache" in missing.stderr
    assert "HF_HUB_OFFLINE" in missing.stderr and "palestra pull acme/echo-code" in missing.stderr


def test_pull_list_show_rm_round_trip(env: dict[str, str]) -> None:
    first = palestra(env, "pull", "acme/tiny-chat@v1", "--quiet")
    assert first.returncode == 0, first.stderr
    assert "acme/tiny-chat@v1" in first.stdout
    assert palestra(env, "pull", "acme/tiny-chat", "-q").returncode == 0
    assert len(snapshots(env, "acme/tiny-chat")) == 2

    listed = json.loads(palestra(env, "list", "--json").stdout)
    (row,) = listed
    assert row["model"] == "acme/tiny-chat"
    assert row["revisions"] == ["main", "v1"]
    assert row["size_bytes"] > 14_000_000  # the weights once: blobs are shared by revisions
    assert row["size_bytes"] < 2 * 14_000_000
    assert row["template"] == "tokenizer" and row["quantization"] is None
    table = palestra(env, "list").stdout
    assert table.splitlines()[0].split()[:3] == ["MODEL", "REVISIONS", "SIZE"]
    assert "acme/tiny-chat" in table and "main,v1" in table

    shown = json.loads(palestra(env, "show", "acme/tiny-chat@v1", "--json").stdout)
    assert shown["license"] == "apache-2.0"
    assert shown["context_length"] == 512
    assert shown["parameters"] > 1_000_000
    assert "First release." in shown["card"]
    assert "Second release." in palestra(env, "show", "acme/tiny-chat").stdout

    one = palestra(env, "rm", "acme/tiny-chat@v1")
    assert one.returncode == 0, one.stderr
    assert len(snapshots(env, "acme/tiny-chat")) == 1
    everything = palestra(env, "rm", "acme/tiny-chat")
    assert everything.returncode == 0 and "freed" in everything.stdout
    assert json.loads(palestra(env, "list", "--json").stdout) == []
    again = palestra(env, "rm", "acme/tiny-chat")
    assert again.returncode == 2 and "not in the Hugging Face cache" in again.stderr


def test_rm_refuses_while_a_process_has_the_model_loaded(env: dict[str, str]) -> None:
    chat = subprocess.Popen(
        [*CLI, "chat", "--model-path", "acme/tiny-chat"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    try:
        marker = Path(env["HF_HOME"]) / "palestra-in-use" / "models--acme--tiny-chat"
        deadline = time.monotonic() + 120
        while not (marker.is_dir() and any(marker.iterdir())) and time.monotonic() < deadline:
            time.sleep(0.2)
        refused = palestra(env, "rm", "acme/tiny-chat")
        assert refused.returncode == 2
        assert f"loaded by running process(es) {chat.pid}" in refused.stderr
        assert snapshots(env, "acme/tiny-chat")
    finally:
        chat.communicate("!!exit\n", timeout=120)
    removed = palestra(env, "rm", "acme/tiny-chat")
    assert removed.returncode == 0, removed.stderr


@pytest.mark.parametrize(
    ("model", "extra_env", "expected"),
    [
        ("acme/gated-chat", {}, "acme/gated-chat is gated"),
        ("acme/no-such-model", {}, "no model 'acme/no-such-model' on the Hub"),
        ("acme/tiny-chat@v9", {}, "acme/tiny-chat has no revision 'v9'"),
        ("acme/tiny-chat", {"HF_ENDPOINT": "http://127.0.0.1:9"}, "cannot be reached"),
    ],
)
def test_hub_errors_are_one_line_that_says_what_to_do(
    env: dict[str, str], model: str, extra_env: dict[str, str], expected: str
) -> None:
    result = palestra(env | extra_env, "chat", "--model-path", model, stdin="hi\n")
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and expected in lines[0], result.stderr
    assert "Traceback" not in result.stderr
    if "gated" in expected:
        assert "HF_TOKEN" in lines[0] and "hf auth login" in lines[0]


def test_a_gated_repo_downloads_with_the_users_token(
    hub: tuple[FakeHub, str], env: dict[str, str]
) -> None:
    fake, _ = hub
    result = palestra(env | {"HF_TOKEN": fake.granted_token}, "pull", "acme/gated-chat", "-q")
    assert result.returncode == 0, result.stderr
    assert snapshots(env, "acme/gated-chat")


def test_remote_code_needs_the_flag_and_runs_the_revisions_code(env: dict[str, str]) -> None:
    refused = palestra(env, "chat", "--model-path", "acme/echo-code", stdin="hi\n")
    assert refused.returncode == 2
    assert "runs its own Python code (modeling_echo.EchoForCausalLM)" in refused.stderr
    assert "--trust-remote-code" in refused.stderr
    script = (
        "from palestra.backends.hf.backend import HFBackend\n"
        "from palestra.models.inspect import resolve_model_path\n"
        "b = HFBackend.load(resolve_model_path('acme/echo-code'), trust_remote_code=True)\n"
        "print(type(b.model).__name__, b.model.shipped_by_the_repo, b.model_name)\n"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=300
    )
    assert loaded.returncode == 0, loaded.stderr
    assert loaded.stdout.split() == ["EchoForCausalLM", "True", "echo-code"]
    trusted = palestra(
        env, "chat", "--model-path", "acme/echo-code", "--trust-remote-code",
        "--temperature", "0", stdin="What is the capital of France?\n",
    )  # fmt: skip
    assert trusted.returncode == 0, trusted.stderr
    assert "Paris" in trusted.stdout


def test_an_adapter_from_the_hub_brings_its_base(env: dict[str, str]) -> None:
    pulled = palestra(env, "pull", "acme/tiny-lora", "-q")
    assert pulled.returncode == 0, pulled.stderr
    assert snapshots(env, "acme/tiny-lora") and snapshots(env, "acme/tiny-chat")
    result = palestra(
        env | {"HF_HUB_OFFLINE": "1"}, "chat", "--model-path", "acme/tiny-lora",
        "--temperature", "0", stdin="Hello!\n",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip()


def test_snapshot_weights_match_the_hub(hub: tuple[FakeHub, str], env: dict[str, str]) -> None:
    fake, _ = hub
    assert palestra(env, "pull", "acme/tiny-chat", "-q").returncode == 0
    (snapshot,) = snapshots(env, "acme/tiny-chat")
    commit = fake.repos["acme/tiny-chat"].refs["main"]
    assert snapshot.name == commit
    for name, data in fake.repos["acme/tiny-chat"].commits[commit].items():
        if name != "pytorch_model.bin":
            digest = hashlib.sha256((snapshot / name).read_bytes()).hexdigest()
            assert digest == hashlib.sha256(data).hexdigest(), name


def test_train_and_convert_take_a_hub_id_at_a_revision(env: dict[str, str], tmp_path: Path) -> None:
    data = tmp_path / "data.jsonl"
    turn = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"}]
    data.write_text("\n".join(json.dumps({"messages": turn}) for _ in range(4)))
    refused = palestra(
        env, "train", "sft", str(data), "--out", str(tmp_path / "echo"),
        "--model-path", "acme/echo-code", "--max-steps", "1",
    )  # fmt: skip
    assert refused.returncode == 2 and "--trust-remote-code" in refused.stderr
    tuned = palestra(
        env, "train", "sft", str(data), "--out", str(tmp_path / "tuned"),
        "--model-path", "acme/tiny-chat", "--revision", "v1", "--max-steps", "1",
        "--batch-size", "2", "--device", "cpu",
    )  # fmt: skip
    assert tuned.returncode == 0, tuned.stderr
    assert (tmp_path / "tuned" / "model.safetensors").is_file()
    v1 = {p.name for p in snapshots(env, "acme/tiny-chat")}
    converted = subprocess.run(
        [*CLI, "convert", "gguf", "acme/tiny-chat", "--revision", "v1", "--outtype", "f32"],
        capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path,
    )  # fmt: skip
    assert converted.returncode == 0, converted.stderr
    assert (tmp_path / "tiny-chat-f32.gguf").stat().st_size > 1_000_000  # here, not in the cache
    assert {p.name for p in snapshots(env, "acme/tiny-chat")} == v1  # the same revision
