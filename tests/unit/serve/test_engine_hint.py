"""`palestra serve` on a CPU says so when a GGUF of the model sits in its folder: there
llama.cpp is the faster engine."""

from __future__ import annotations

import shutil
from pathlib import Path

from palestra.backends.options import ModelSettings
from palestra.models.inspect import bundled_model_path
from palestra.serve.worker.settings import faster_engine_hints


def test_a_gguf_beside_the_model_is_named_on_a_cpu(tmp_path: Path) -> None:
    folder = tmp_path / "tiny"
    shutil.copytree(bundled_model_path(), folder)
    model = ModelSettings(model_path=[str(folder)])
    assert faster_engine_hints(model, "hf", "cpu") == []  # no GGUF yet

    (folder / "tiny-q8_0.gguf").write_bytes(b"GGUF")
    [hint] = faster_engine_hints(model, "hf", "cpu")
    assert f"--backend llamacpp --model-path {folder / 'tiny-q8_0.gguf'}" in hint
    assert faster_engine_hints(model, "hf", "cuda") == []  # a GPU: transformers it is
    assert faster_engine_hints(model, "llamacpp", "cpu") == []  # already llama.cpp
