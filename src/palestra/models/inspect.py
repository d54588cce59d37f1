"""What Palestra would do with a model folder or name: its family, template, backend and
kind, and for a PEFT adapter folder, its base model. Reads JSON files only (no torch)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from palestra.core.errors import ModelNotFoundError
from palestra.models.spec import ModelSpec
from palestra.plugins import model_registry

BUNDLED_MODEL = "palestra-tiny"


def bundled_model_path() -> Path:
    """The folder of Palestra Tiny, shipped inside the package."""
    return Path(__file__).resolve().parent.parent / "bundled" / "tiny-chat"


@dataclass(frozen=True)
class ModelInfo:
    path: str
    family: ModelSpec | None
    template: str  # a template name, or "tokenizer" for the tokenizer's own
    backend: str
    kind: str
    has_tokenizer_template: bool
    adapter_base: str | None = None  # for PEFT adapter folders
    config: dict[str, Any] | None = None

    def describe(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "family": self.family.id if self.family else None,
            "display_name": self.family.display_name if self.family else None,
            "kind": self.kind,
            "template": self.template,
            "backend": self.backend,
            "pooling": self.family.pooling if self.family else None,
            "peft_adapter_of": self.adapter_base,
            "architectures": (self.config or {}).get("architectures"),
        }


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text("utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _has_tokenizer_template(folder: Path) -> bool:
    config = _read_json(folder / "tokenizer_config.json") or {}
    return (
        bool(config.get("chat_template"))
        or (folder / "chat_template.jinja").is_file()
        or (folder / "chat_template.json").is_file()
    )


def resolve_model_path(path_or_name: str | None) -> str:
    """`None` or the bundled model's name means the bundled model; else the path as given."""
    if path_or_name in (None, "", BUNDLED_MODEL):
        return str(bundled_model_path())
    return str(path_or_name)


def served_name(path: str, family: ModelSpec | None) -> str:
    """The name a model folder is served under: the bundled model's id, else the folder's."""
    if family is not None and family.id == BUNDLED_MODEL:
        return family.id
    return path.rstrip("/").rsplit("/", 1)[-1]


def inspect_model(path_or_name: str, *, must_exist: bool = True) -> ModelInfo:
    """Classify a model folder (or a bare name when `must_exist` is False)."""
    path = resolve_model_path(path_or_name)
    folder = Path(path).expanduser()
    if must_exist and not folder.is_dir():
        raise ModelNotFoundError(
            f"model path {path!r} is not a folder; give a local Hugging Face model folder "
            "(with config.json), or leave --model-path out to use the bundled Palestra Tiny"
        )
    registry = model_registry()
    adapter = _read_json(folder / "adapter_config.json")
    if adapter is not None:
        base = str(adapter.get("base_model_name_or_path") or "")
        if not base:
            raise ModelNotFoundError(f"{path}/adapter_config.json names no base model")
        base_info = inspect_model(base, must_exist=Path(base).is_dir())
        template = base_info.template
        if _has_tokenizer_template(folder):
            template = "tokenizer"
        return ModelInfo(
            path,
            base_info.family,
            template,
            base_info.backend,
            base_info.kind,
            base_info.has_tokenizer_template or template == "tokenizer",
            adapter_base=base,
            config=base_info.config,
        )
    config = _read_json(folder / "config.json")
    if must_exist and config is None and not any(folder.glob("*.gguf")):
        raise ModelNotFoundError(
            f"{path} has no config.json; a model folder needs the files that "
            "`save_pretrained` writes (config.json, weights, tokenizer)"
        )
    name = str(folder)
    if config and config.get("_name_or_path"):
        name = f"{folder.name} {config['_name_or_path']}"
    family = registry.resolve(folder.name, config) or (
        registry.resolve(name, config) if name != str(folder) else None
    )
    own_template = _has_tokenizer_template(folder)
    if own_template:
        template = "tokenizer"
    elif family and family.template:
        template = family.template
    else:
        template = "tokenizer"
    kind = family.kind if family else "chat"
    if config and config.get("is_encoder_decoder"):
        kind = "seq2seq"
    backend = family.default_backend if family else "hf"
    return ModelInfo(path, family, template, backend, kind, own_template, config=config)
