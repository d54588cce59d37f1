"""Hub references and the choice of files a model needs (no network: pure functions)."""

from __future__ import annotations

from pathlib import Path

import pytest

from palestra.core.errors import ModelNotFoundError
from palestra.models.hub import (
    HubReference,
    choose_files,
    gguf_file,
    hub_reference,
    repo_id_of_snapshot,
    wanted,
)


def test_references_parse_repo_quant_and_revision() -> None:
    assert HubReference.parse("lmsys/vicuna-7b-v1.5") == HubReference("lmsys/vicuna-7b-v1.5")
    ref = HubReference.parse("org/Model-GGUF:Q4_K_M@refs/pr/1")
    assert ref == HubReference("org/Model-GGUF", "refs/pr/1", "Q4_K_M")
    assert str(ref) == "org/Model-GGUF:Q4_K_M@refs/pr/1" and ref.name == "Model-GGUF"
    assert HubReference.parse("org/name", "v2") == HubReference("org/name", "v2")
    for not_hub in ("vicuna", "/abs/path", "a/b/c", "./rel", "org/"):
        assert HubReference.parse(not_hub) is None
    with pytest.raises(ModelNotFoundError, match="names revision 'v1' but --revision is 'v2'"):
        HubReference.parse("org/name@v1", "v2")


def test_an_existing_local_folder_named_like_a_hub_id_wins(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "org" / "name").mkdir(parents=True)
    monkeypatch.chdir(tmp_path)
    assert hub_reference("org/name") is None
    assert hub_reference("org/other") == HubReference("org/other")


def test_safetensors_win_and_other_formats_stay_on_the_hub() -> None:
    files = [
        "config.json", "model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors",
        "model.safetensors.index.json", "pytorch_model.bin", "consolidated.safetensors",
        "original/consolidated.00.pth", "tf_model.h5", "flax_model.msgpack", "onnx/model.onnx",
        "tokenizer.json", "tokenizer.model", "model-q4.gguf",
    ]  # fmt: skip
    allow, ignore = choose_files(files, HubReference("org/name"))
    kept = [f for f in files if wanted(f, allow, ignore)]
    assert kept == [
        "config.json", "model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors",
        "model.safetensors.index.json", "tokenizer.json", "tokenizer.model",
    ]  # fmt: skip


def test_pickled_weights_when_there_are_no_safetensors() -> None:
    files = ["config.json", "pytorch_model.bin", "tf_model.h5", "tokenizer.json"]
    allow, ignore = choose_files(files, HubReference("org/name"))
    assert [f for f in files if wanted(f, allow, ignore)] == [
        "config.json",
        "pytorch_model.bin",
        "tokenizer.json",
    ]


def test_a_gguf_repo_gives_the_one_quantisation_asked_for() -> None:
    files = [
        "README.md", "Model-Q4_K_M.gguf", "Model-Q8_0.gguf",
        "big/Model-F16-00001-of-00002.gguf", "big/Model-F16-00002-of-00002.gguf",
    ]  # fmt: skip
    allow, ignore = choose_files(files, HubReference("org/M-GGUF", quant="q4_k_m"))
    assert [f for f in files if wanted(f, allow, ignore)] == ["README.md", "Model-Q4_K_M.gguf"]
    allow, ignore = choose_files(files, HubReference("org/M-GGUF", quant="F16"))
    assert [f for f in files if wanted(f, allow, ignore)] == [
        "README.md",
        "big/Model-F16-00001-of-00002.gguf",
        "big/Model-F16-00002-of-00002.gguf",
    ]
    with pytest.raises(ModelNotFoundError, match=r"several GGUF files.*org/M-GGUF:QUANT.*Q4_K_M"):
        choose_files(files, HubReference("org/M-GGUF"))
    with pytest.raises(ModelNotFoundError, match="no GGUF file matches 'Q2_K'"):
        choose_files(files, HubReference("org/M-GGUF", quant="Q2_K"))


def test_snapshot_folders_know_their_repo(tmp_path: Path) -> None:
    snapshot = tmp_path / "hub" / "models--lmsys--vicuna-7b-v1.5" / "snapshots" / "abc123"
    assert repo_id_of_snapshot(snapshot) == "lmsys/vicuna-7b-v1.5"
    assert repo_id_of_snapshot(snapshot / "model-Q4.gguf") == "lmsys/vicuna-7b-v1.5"
    assert repo_id_of_snapshot(tmp_path / "my-model") is None


def test_a_gguf_quantisation_is_found_among_others_in_one_snapshot(tmp_path: Path) -> None:
    for name in ("Model-Q8_0.gguf", "Model-Q4_K_M.gguf", "config.json"):
        (tmp_path / name).write_text("x")
    assert gguf_file(tmp_path, HubReference("o/m", quant="Q8_0")).name == "Model-Q8_0.gguf"
    assert gguf_file(tmp_path, HubReference("o/m", quant="q4_k_m")).name == "Model-Q4_K_M.gguf"


def test_only_what_is_missing_counts_against_free_disk(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from collections import namedtuple

    from huggingface_hub import constants

    from palestra.models import hub

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path))
    reference = HubReference("acme/tiny")
    snapshot = tmp_path / "models--acme--tiny" / "snapshots" / "c0ffee"
    snapshot.mkdir(parents=True)
    (snapshot / "model.safetensors").write_bytes(b"w")
    sizes = {"model.safetensors": 5_000, "config.json": 10, "pytorch_model.bin": 5_000}
    allow, ignore = choose_files(sizes, reference)
    assert hub._missing_bytes(reference, "c0ffee", sizes, allow, ignore) == 10
    assert hub._missing_bytes(reference, "other", sizes, allow, ignore) == 5_010
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(hub.shutil, "disk_usage", lambda _: usage(100, 90, 10))
    hub._check_disk(reference, 10)  # a cached model loads on a full disk
    with pytest.raises(hub.HubError, match=r"not enough disk space for acme/tiny"):
        hub._check_disk(reference, 11)
