"""The model registry resolves families by stable signals, whatever the registration order."""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from palestra.core.errors import ModelNotFoundError
from palestra.models.families import BUILTIN_FAMILIES
from palestra.models.inspect import inspect_model
from palestra.models.registry import ModelRegistry
from palestra.models.spec import ModelSpec
from palestra.plugins import model_registry

LLAMA = {"architectures": ["LlamaForCausalLM"], "model_type": "llama"}
CASES = [
    ("lmsys/vicuna-7b-v1.5", LLAMA, "vicuna"),
    ("vicuna-13b-v1.3", LLAMA, "vicuna"),
    ("meta-llama/Llama-2-7b-chat-hf", LLAMA, "llama-2"),
    ("meta-llama/Meta-Llama-3-8B-Instruct", LLAMA, "llama-3"),
    ("Llama-3.1-8B-Instruct", LLAMA, "llama-3"),
    ("mistralai/Mistral-7B-Instruct-v0.2", {"architectures": ["MistralForCausalLM"]}, "mistral"),
    ("Mixtral-8x7B-Instruct-v0.1", {"architectures": ["MixtralForCausalLM"]}, "mistral"),
    ("Qwen/Qwen2.5-7B-Instruct", {"architectures": ["Qwen2ForCausalLM"]}, "qwen"),
    ("01-ai/Yi-34B-Chat", LLAMA, "yi"),
    ("google/gemma-2b-it", {"architectures": ["GemmaForCausalLM"]}, "gemma"),
    ("microsoft/Phi-3-mini-4k-instruct", {"architectures": ["Phi3ForCausalLM"]}, "phi-3"),
    ("deepseek-ai/deepseek-llm-7b-chat", LLAMA, "deepseek"),
    ("tiiuae/falcon-7b-instruct", {"architectures": ["FalconForCausalLM"]}, "falcon"),
    ("THUDM/chatglm3-6b", {"architectures": ["ChatGLMModel"]}, "chatglm3"),
    ("lmsys/fastchat-t5-3b-v1.0", {"architectures": ["T5ForConditionalGeneration"]}, "fastchat-t5"),
    ("BAAI/bge-large-en-v1.5", {"architectures": ["BertModel"]}, "bge"),
    ("intfloat/e5-large-v2", {"architectures": ["BertModel"]}, "e5"),
    ("thenlper/gte-base", {"architectures": ["BertModel"]}, "gte"),
    ("HuggingFaceH4/zephyr-7b-beta", {"architectures": ["MistralForCausalLM"]}, "zephyr"),
    ("openchat/openchat_3.5", {"architectures": ["MistralForCausalLM"]}, "openchat"),
    # the name says nothing: the config decides
    ("my-finetune", {"architectures": ["Qwen2ForCausalLM"]}, "qwen"),
    ("my-finetune", {"architectures": ["MixtralForCausalLM"]}, "mistral"),
    ("my-finetune", LLAMA, "llama"),
    ("checkpoint-500", {"model_type": "phi3"}, "phi-3"),
]


@pytest.mark.parametrize(("name", "config", "family"), CASES)
def test_resolution(name: str, config: dict, family: str) -> None:
    spec = model_registry().resolve(name, config)
    assert spec is not None and spec.id == family


def test_resolution_does_not_depend_on_registration_order() -> None:
    expected = {(n, json.dumps(c)): f for n, c, f in CASES}
    for seed in range(5):
        families = list(BUILTIN_FAMILIES)
        random.Random(seed).shuffle(families)
        registry = ModelRegistry(families)
        for name, config, _ in CASES:
            spec = registry.resolve(name, config)
            assert spec is not None and spec.id == expected[(name, json.dumps(config))]


def test_a_name_pattern_incompatible_with_the_architecture_is_ignored() -> None:
    # "llama-2" in the name, but the config is a Mistral: the architecture wins
    spec = model_registry().resolve(
        "llama-2-style-mistral", {"architectures": ["MistralForCausalLM"]}
    )
    assert spec is not None and spec.id == "mistral"


def test_ids_and_aliases() -> None:
    registry = model_registry()
    assert registry.get("llama3").id == "llama-3"
    assert registry.get("Mixtral").id == "mistral"
    with pytest.raises(ModelNotFoundError, match="known:"):
        registry.get("nonexistent")


def _write(folder: Path, name: str, data: dict) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(json.dumps(data))


def test_inspect_folder_family_template_backend(tmp_path: Path) -> None:
    _write(tmp_path / "vicuna-7b-v1.5", "config.json", LLAMA)
    info = inspect_model(str(tmp_path / "vicuna-7b-v1.5"))
    assert (info.family and info.family.id, info.template, info.backend, info.kind) == (
        "vicuna",
        "vicuna_v1.1",
        "hf",
        "chat",
    )


def test_tokenizer_template_beats_family_default(tmp_path: Path) -> None:
    folder = tmp_path / "Llama-2-7b-chat-hf"
    _write(folder, "config.json", LLAMA)
    _write(folder, "tokenizer_config.json", {"chat_template": "{{ messages }}"})
    assert inspect_model(str(folder)).template == "tokenizer"


def test_encoder_decoder_and_embedding_kinds(tmp_path: Path) -> None:
    _write(
        tmp_path / "fastchat-t5-3b",
        "config.json",
        {"architectures": ["T5ForConditionalGeneration"], "is_encoder_decoder": True},
    )
    _write(tmp_path / "bge-small-en", "config.json", {"architectures": ["BertModel"]})
    assert inspect_model(str(tmp_path / "fastchat-t5-3b")).kind == "seq2seq"
    info = inspect_model(str(tmp_path / "bge-small-en"))
    assert info.kind == "embedding" and info.family is not None and info.family.pooling == "cls"


def test_peft_adapter_folder_points_to_its_base(tmp_path: Path) -> None:
    base = tmp_path / "Meta-Llama-3-8B-Instruct"
    _write(base, "config.json", LLAMA)
    _write(
        tmp_path / "my-lora",
        "adapter_config.json",
        {"base_model_name_or_path": str(base), "peft_type": "LORA"},
    )
    info = inspect_model(str(tmp_path / "my-lora"))
    assert info.adapter_base == str(base)
    assert info.family is not None and info.family.id == "llama-3"
    assert info.template == "llama-3"


def test_missing_folder_says_what_to_give(tmp_path: Path) -> None:
    with pytest.raises(ModelNotFoundError, match="neither a folder nor a Hugging Face Hub id"):
        inspect_model(str(tmp_path / "absent"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelNotFoundError, match=r"no config\.json"):
        inspect_model(str(tmp_path / "empty"))


def test_bundled_model_is_recognised() -> None:
    info = inspect_model("palestra-tiny")
    assert info.family is not None and info.family.id == "palestra-tiny"
    assert info.template == "tokenizer"


class AcmePlugin:
    @staticmethod
    def register_models() -> list[ModelSpec]:
        return [ModelSpec("acme", "Acme Chat", name_patterns=(r"acme",), template="chatml")]


class ClashingPlugin:
    @staticmethod
    def register_models() -> list[ModelSpec]:
        return [ModelSpec("vicuna", "Not Vicuna", template="chatml")]


class OverridingPlugin(ClashingPlugin):
    overrides = ("models:vicuna",)


def _with_plugins(monkeypatch: pytest.MonkeyPatch, *extra: tuple[str, Any]) -> None:
    from palestra import builtin_plugin, plugins

    monkeypatch.setattr(plugins, "load_plugins", lambda: (("builtin", builtin_plugin), *extra))
    for cached in (plugins.templates, plugins.model_registry, plugins.backend_factories):
        cached.cache_clear()


@pytest.fixture(autouse=True)
def _fresh_tables() -> Iterator[None]:
    from palestra import plugins

    yield
    plugins.reset()


def test_plugins_can_add_families(monkeypatch: pytest.MonkeyPatch) -> None:
    _with_plugins(monkeypatch, ("acme", AcmePlugin))
    spec = model_registry().resolve("acme-7b-chat", LLAMA)
    assert spec is not None and spec.id == "acme"


def test_a_plugin_reusing_an_id_is_an_error_unless_it_overrides(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from palestra.plugins import PluginError

    _with_plugins(monkeypatch, ("clash", ClashingPlugin))
    with pytest.raises(PluginError, match=r"plugin 'clash' registers models 'vicuna'.*'builtin'"):
        model_registry()
    _with_plugins(monkeypatch, ("override", OverridingPlugin))
    assert model_registry().get("vicuna").display_name == "Not Vicuna"


def test_the_environment_allow_lists_third_party_plugins(monkeypatch: pytest.MonkeyPatch) -> None:
    from importlib.metadata import EntryPoint

    from palestra import plugins

    entries = [
        EntryPoint("acme", "tests.unit.test_registry:AcmePlugin", plugins.GROUP),
        EntryPoint("clash", "tests.unit.test_registry:ClashingPlugin", plugins.GROUP),
    ]
    monkeypatch.setattr(plugins, "entry_points", lambda group: entries)
    monkeypatch.setenv(plugins.ALLOW_ENV, "acme")
    plugins.reset()
    assert [name for name, _ in plugins.load_plugins()] == ["builtin", "acme"]
    monkeypatch.setenv(plugins.ALLOW_ENV, "none")
    plugins.reset()
    assert [name for name, _ in plugins.load_plugins()] == ["builtin"]
    monkeypatch.delenv(plugins.ALLOW_ENV)
    plugins.reset()
    assert [name for name, _ in plugins.load_plugins()] == ["builtin", "acme", "clash"]


def test_registries_do_not_import_the_plugins_that_fill_them() -> None:
    """The registry modules import nothing of `palestra.plugins` (no import circle)."""
    import ast

    import palestra

    root = Path(palestra.__file__).parent
    for module in ("templates/library.py", "models/registry.py", "backends/registry.py"):
        tree = ast.parse((root / module).read_text())
        imported = {
            node.module if isinstance(node, ast.ImportFrom) else alias.name
            for node in ast.walk(tree)
            if isinstance(node, ast.Import | ast.ImportFrom)
            for alias in node.names
        }
        assert not any(name and name.startswith("palestra.plugins") for name in imported), module
