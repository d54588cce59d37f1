"""Folders quantised already (GPTQ, AWQ): transformers reads their quantisation config;
without the kernels' package the load is one error naming the method and the install, and
--load-8bit on top of one is refused."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from palestra.backends.hf.loading import load_model
from palestra.backends.options import HFOptions
from palestra.core.errors import UnsupportedError
from palestra.models.inspect import bundled_model_path


def _quantised(tmp_path: Path, method: str) -> Path:
    folder = tmp_path / f"tiny-{method}"
    shutil.copytree(bundled_model_path(), folder)
    config = json.loads((folder / "config.json").read_text())
    config["quantization_config"] = {"quant_method": method, "bits": 4, "group_size": 128}
    (folder / "config.json").write_text(json.dumps(config))
    return folder


@pytest.mark.parametrize("method", ["gptq", "awq"])
def test_a_quantised_folder_without_its_package_is_one_error(tmp_path: Path, method: str) -> None:
    if method == "gptq" and _installed("optimum") and _installed("gptqmodel"):
        pytest.skip("the GPTQ packages are installed here")
    if method == "awq" and _installed("gptqmodel"):
        pytest.skip("the AWQ package is installed here")
    with pytest.raises(UnsupportedError, match=rf"is a {method}-quantised model: .*pip install"):
        load_model(str(_quantised(tmp_path, method)), HFOptions(device="cpu"))


def test_8bit_on_a_quantised_folder_is_refused(tmp_path: Path) -> None:
    with pytest.raises(UnsupportedError, match="already gptq-quantised; drop --load-8bit"):
        load_model(str(_quantised(tmp_path, "gptq")), HFOptions(device="cpu", load_8bit=True))


def _installed(package: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(package) is not None
