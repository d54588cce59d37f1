"""The models on this machine, the Ollama way, on huggingface_hub's own cache: what is
cached (size, family, template, quantisation, last use), what one model is (config,
template, context length, license, card), and removing one (never while a process that
loaded it runs).

Scanning and deleting use huggingface_hub's cache API (`scan_cache_dir`,
`delete_revisions`). The only thing of Palestra's own is an in-use marker per process
that loaded a cached model (`<HF_HUB_CACHE>/../palestra-in-use/<repo folder>/<pid>`), so
that `rm` can refuse; markers of dead processes are ignored and cleared.
"""

from __future__ import annotations

import atexit
import datetime as dt
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from palestra.core.errors import InvalidRequestError, ModelNotFoundError
from palestra.models.hub import HubReference, cache_dir, repo_storage
from palestra.models.inspect import context_length, inspect_model, read_json


@dataclass(frozen=True)
class CachedModel:
    """One cached repo, described from its newest snapshot."""

    repo_id: str
    refs: tuple[str, ...]
    size_bytes: int
    family: str | None
    template: str
    quantization: str | None
    last_used: float
    snapshot: Path

    def row(self) -> dict[str, Any]:
        return {
            "model": self.repo_id,
            "revisions": list(self.refs),
            "size_bytes": self.size_bytes,
            "family": self.family,
            "template": self.template,
            "quantization": self.quantization,
            "last_used": dt.datetime.fromtimestamp(self.last_used, dt.UTC).isoformat(
                timespec="seconds"
            ),
            "path": str(self.snapshot),
        }


def _scan() -> Any:
    from huggingface_hub import scan_cache_dir
    from huggingface_hub.errors import CacheNotFound

    try:
        return scan_cache_dir()
    except CacheNotFound:
        return None


def cached_models() -> list[CachedModel]:
    """Every model repo in the Hub cache, largest first."""
    info = _scan()
    if info is None:
        return []
    found = [_describe_repo(repo) for repo in info.repos if repo.repo_type == "model"]
    return sorted(found, key=lambda m: (-m.size_bytes, m.repo_id))


def _describe_repo(repo: Any) -> CachedModel:
    newest = max(repo.revisions, key=lambda r: r.last_modified)
    refs = tuple(sorted(ref for revision in repo.revisions for ref in revision.refs))
    try:
        info = inspect_model(str(newest.snapshot_path))
        family, template = (info.family.id if info.family else None), info.template
        config = info.config or {}
    except Exception:  # a half-downloaded or foreign repo still lists
        family, template, config = None, "?", {}
    return CachedModel(
        repo.repo_id,
        refs or (newest.commit_hash[:12],),
        repo.size_on_disk,
        family,
        template,
        quantization(newest.snapshot_path, config),
        repo.last_accessed,
        newest.snapshot_path,
    )


_GGUF_QUANT = re.compile(r"(I?Q\d[\w]*|F16|BF16|F32)", re.IGNORECASE)


def quantization(folder: Path, config: dict[str, Any]) -> str | None:
    """gptq / awq / bitsandbytes (from the config), a GGUF file's quantisation, or None."""
    method = (config.get("quantization_config") or {}).get("quant_method")
    if method:
        bits = (config.get("quantization_config") or {}).get("bits")
        return f"{method}{f' {bits}-bit' if bits else ''}"
    labels = []
    for gguf in sorted(folder.glob("*.gguf")):
        match = _GGUF_QUANT.findall(gguf.stem)
        labels.append(match[-1].upper() if match else "gguf")
    return ", ".join(sorted(set(labels))) or None


def find_cached(reference: HubReference) -> Path:
    """The cached snapshot folder for `reference` (its revision, else the newest)."""
    revisions = _revisions(_repo(reference.repo_id), reference)
    return Path(max(revisions, key=lambda r: r.last_modified).snapshot_path)


def _revisions(repo: Any, reference: HubReference) -> list[Any]:
    """The cached revisions `reference` names (all without a revision; else by branch or
    tag name, or a commit hash or its prefix); none is an error naming those cached."""
    revision = reference.revision
    found = [
        r
        for r in repo.revisions
        if revision is None or revision in r.refs or r.commit_hash.startswith(revision)
    ]
    if not found:
        known = ", ".join(sorted(ref for r in repo.revisions for ref in r.refs)) or "none"
        raise ModelNotFoundError(
            f"{reference.repo_id} has no cached revision {revision!r} "
            f"(cached: {known}); fetch it with `palestra pull {reference}`"
        )
    return found


def _repo(repo_id: str) -> Any:
    info = _scan()
    for repo in info.repos if info else ():
        if repo.repo_type == "model" and repo.repo_id == repo_id:
            return repo
    raise ModelNotFoundError(
        f"{repo_id} is not in the Hugging Face cache ({cache_dir()}); "
        f"fetch it with `palestra pull {repo_id}`"
    )


def model_card(folder: Path) -> dict[str, Any]:
    """What `palestra show` prints: config essentials, template, context length,
    license and the model card's text."""
    info = inspect_model(str(folder))
    config = info.config or {}
    readme = folder / "README.md"
    card_text = readme.read_text("utf-8", errors="replace") if readme.is_file() else ""
    metadata, body = _front_matter(card_text)
    generation = read_json(folder / "generation_config.json")
    return {
        "path": str(folder),
        "family": info.family.id if info.family else None,
        "architectures": config.get("architectures"),
        "model_type": config.get("model_type"),
        "parameters": _parameter_count(folder),
        "context_length": context_length(config),
        "template": info.template,
        "quantization": quantization(folder, config),
        "dtype": config.get("torch_dtype") or config.get("dtype"),
        "license": metadata.get("license"),
        "remote_code": bool(config.get("auto_map")),
        "generation_config": generation,
        "card": body.strip(),
    }


def _parameter_count(folder: Path) -> int | None:
    """Parameters from the safetensors headers (no weights read)."""
    total = 0
    for file in sorted(folder.glob("*.safetensors")):
        with file.open("rb") as handle:
            size = int.from_bytes(handle.read(8), "little")
            header = json.loads(handle.read(size))
        for name, entry in header.items():
            if name != "__metadata__":
                count = 1
                for dim in entry["shape"]:
                    count *= dim
                total += count
    return total or None


def _front_matter(text: str) -> tuple[dict[str, Any], str]:
    if not text.startswith("---"):
        return {}, text
    head, sep, body = text[3:].partition("\n---")
    if not sep:
        return {}, text
    import yaml

    try:
        data = yaml.safe_load(head)
    except yaml.YAMLError:
        return {}, body
    return (data if isinstance(data, dict) else {}), body


# ---------------------------------------------------------------- in use, removal
def _markers(repo_id: str) -> Path:
    return cache_dir().parent / "palestra-in-use" / repo_storage(repo_id).name


def mark_in_use(repo_id: str) -> None:
    """Record that this process loaded `repo_id` (cleared when the process exits)."""
    marker = _markers(repo_id) / str(os.getpid())
    try:
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.touch()
    except OSError:
        return  # a read-only cache: rm cannot be guarded, loading goes on
    atexit.register(marker.unlink, missing_ok=True)


def users_of(repo_id: str) -> list[int]:
    """Live processes that loaded `repo_id` (markers of dead ones are removed)."""
    folder = _markers(repo_id)
    alive = []
    for marker in folder.glob("*") if folder.is_dir() else ():
        pid = int(marker.name) if marker.name.isdigit() else 0
        if pid and _alive(pid):
            alive.append(pid)
        else:
            marker.unlink(missing_ok=True)
    return sorted(alive)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove(reference: HubReference) -> int:
    """Delete a cached model (one revision when given, else all); returns bytes freed.
    Refuses while a live process has it loaded."""
    repo = _repo(reference.repo_id)
    users = users_of(reference.repo_id)
    if users:
        raise InvalidRequestError(
            f"{reference.repo_id} is loaded by running process(es) {', '.join(map(str, users))} "
            "(a worker or chat); stop them first"
        )
    revisions = [r.commit_hash for r in _revisions(repo, reference)]
    strategy = _scan().delete_revisions(*revisions)
    strategy.execute()
    return int(strategy.expected_freed_size)
