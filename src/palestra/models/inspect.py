"""What Palestra would do with a model folder, Hub id or name: its family, template,
backend and kind, and for a PEFT adapter folder, its base model. Reads JSON files only (no
torch); a Hub id is fetched into the Hub cache first (`models.hub`)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from palestra.core.errors import ModelNotFoundError, UnsupportedError
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


def read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text("utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _has_tokenizer_template(folder: Path) -> bool:
    config = read_json(folder / "tokenizer_config.json") or {}
    return (
        bool(config.get("chat_template"))
        or (folder / "chat_template.jinja").is_file()
        or (folder / "chat_template.json").is_file()
    )


def context_length(config: dict[str, Any]) -> int | None:
    """The context length a transformers config declares (a vision model's in its
    `text_config`), if any."""
    for source in (config, config.get("text_config") or {}):
        for key in ("max_position_embeddings", "n_positions", "seq_length", "max_sequence_length"):
            value = source.get(key)
            if isinstance(value, int) and value > 0:
                return value
    return None


def shipped_code(folder: str | Path) -> list[str]:
    """The classes a model folder brings as its own Python code (`auto_map` in its
    config.json or tokenizer_config.json), e.g. ChatGLM's or Qwen-1's."""
    found: set[str] = set()
    for name in ("config.json", "tokenizer_config.json"):
        auto_map = (read_json(Path(folder) / name) or {}).get("auto_map") or {}
        for target in auto_map.values():
            for item in target if isinstance(target, list) else [target]:
                if isinstance(item, str) and item:
                    found.add(item)
    return sorted(found)


def check_remote_code(folders: list[str], trusted: bool, flag: str) -> dict[str, bool]:
    """transformers' `trust_remote_code` keyword for loading these folders; refuses a
    model that ships code unless the user said to trust it."""
    code = sorted({item for folder in folders for item in shipped_code(folder)})
    if code and not trusted:
        raise UnsupportedError(
            f"{model_display_name(folders[0])} runs its own Python code ({', '.join(code)}); "
            f"pass {flag} if you trust it (the code of the revision you load is what runs)"
        )
    return {"trust_remote_code": trusted}


def resolve_model_path(path_or_name: str | None, revision: str | None = None) -> str:
    """A local folder or file for a model: `None` or the bundled model's name means the
    bundled model; an existing path is used as it is; a Hub id (`org/name[:QUANT][@REV]`)
    is fetched into the Hugging Face cache (or found there) and its snapshot folder
    returned. Anything else is returned as given (the loader says what is wrong)."""
    if path_or_name in (None, "", BUNDLED_MODEL):
        return str(bundled_model_path())
    from palestra.models.cache import mark_in_use
    from palestra.models.hub import fetch, gguf_file, hub_reference

    reference = hub_reference(str(path_or_name), revision)
    if reference is None:
        return str(path_or_name)
    folder = fetch(reference)
    mark_in_use(reference.repo_id)  # `palestra rm` refuses while this process runs
    if reference.quant:  # the llama.cpp backend takes the quantisation's (first) file
        return str(gguf_file(folder, reference))
    return str(folder)


def model_display_name(path: str) -> str:
    """The model's own name: `name` of a Hub snapshot of `org/name`, else the folder's."""
    from palestra.models.hub import repo_id_of_snapshot

    repo_id = repo_id_of_snapshot(path.rstrip("/"))
    return (repo_id or path.rstrip("/")).rsplit("/", 1)[-1]


def served_name(path: str, family: ModelSpec | None) -> str:
    """The name a model is served under: the bundled model's id, else the model's own name
    (the folder's, or the Hub repo's for a cached snapshot), as FastChat did."""
    if family is not None and family.id == BUNDLED_MODEL:
        return family.id
    return model_display_name(path)


def inspect_model(path_or_name: str, *, must_exist: bool = True) -> ModelInfo:
    """Classify a model folder or Hub id (fetched when not cached), or a bare name when
    `must_exist` is False (nothing is fetched then)."""
    if must_exist:
        path = resolve_model_path(path_or_name)
    else:
        path = str(bundled_model_path()) if path_or_name == BUNDLED_MODEL else path_or_name
    folder = Path(path).expanduser()
    if must_exist and not folder.is_dir():
        raise ModelNotFoundError(
            f"model path {path!r} is neither a folder nor a Hugging Face Hub id (org/name); "
            "give a local model folder (with config.json) or a Hub id, or leave --model-path "
            "out to use the bundled Palestra Tiny"
        )
    registry = model_registry()
    adapter = read_json(folder / "adapter_config.json")
    if adapter is not None:
        base = str(adapter.get("base_model_name_or_path") or "")
        if not base:
            raise ModelNotFoundError(f"{path}/adapter_config.json names no base model")
        base = resolve_model_path(base)  # a Hub id: the adapter brings its base
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
    config = read_json(folder / "config.json")
    if must_exist and config is None and not any(folder.glob("*.gguf")):
        raise ModelNotFoundError(
            f"{path} has no config.json; a model folder needs the files that "
            "`save_pretrained` writes (config.json, weights, tokenizer)"
        )
    own_name = model_display_name(str(folder))
    name = str(folder)
    if config and config.get("_name_or_path"):
        name = f"{own_name} {config['_name_or_path']}"
    family = registry.resolve(own_name, config) or (
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
    elif config and config.get("vision_config"):
        kind = "vision"  # image-text-to-text: a vision encoder in front of a language model
    backend = family.default_backend if family else "hf"
    return ModelInfo(path, family, template, backend, kind, own_template, config=config)
