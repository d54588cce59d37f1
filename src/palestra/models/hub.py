"""Models from the Hugging Face Hub: what a Hub reference is (`org/name`, `:QUANT` for a
GGUF file, `@REVISION`), which files of a repo a model needs, and fetching them into
huggingface_hub's standard cache (or finding them there when offline).

Everything goes through huggingface_hub, so its environment applies as it documents it:
`HF_HOME`, `HF_HUB_CACHE`, `HF_TOKEN`, `HF_ENDPOINT`, `HF_HUB_OFFLINE`; progress bars,
resumed downloads and the cache layout are its own. This module keeps no cache format of
its own. It knows nothing about loading weights: it returns a local folder.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterable
from dataclasses import dataclass
from fnmatch import fnmatch
from pathlib import Path

from palestra.core.errors import AuthenticationError, ModelNotFoundError, PalestraError

_REFERENCE = re.compile(
    r"^(?P<repo>[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*)"
    r"(?::(?P<quant>[\w.-]+))?(?:@(?P<revision>[\w./-]+))?$"
)
_SHARD = re.compile(r"-\d{5}-of-\d{5}\.gguf$")

# Weight formats transformers never loads here, and duplicates of the weights it does.
_NEVER = ("*.h5", "*.msgpack", "*.onnx", "*.onnx_data", "*.ot", "*.tflite", "*.mlmodel")
_NEVER_FOLDERS = ("onnx/*", "openvino/*", "coreml/*")
_PICKLED = ("*.bin", "*.pt", "*.pth", "*.ckpt", "original/*")


class HubError(PalestraError):
    """The Hub could not give a model: unreachable, out of disk, a repo we cannot use."""

    http_status = 502
    error_type = "hub_error"


@dataclass(frozen=True)
class HubReference:
    """`org/name[:QUANT][@REVISION]`: a Hub repo, the GGUF quantisation to take from it
    (llama.cpp's `-hf org/name:Q4_K_M` spelling), and a branch, tag or commit."""

    repo_id: str
    revision: str | None = None
    quant: str | None = None

    @classmethod
    def parse(cls, text: str, revision: str | None = None) -> HubReference | None:
        """The reference `text` names, or None when it is not Hub-shaped. An explicit
        `revision` (--revision) must agree with one written after `@`."""
        match = _REFERENCE.match(text.strip())
        if match is None:
            return None
        written = match["revision"]
        if written and revision and written != revision:
            raise ModelNotFoundError(
                f"{text!r} names revision {written!r} but --revision is {revision!r}; give one"
            )
        return cls(match["repo"], written or revision, match["quant"])

    @property
    def name(self) -> str:
        """The model's short name (FastChat's default served name: the last path part)."""
        return self.repo_id.rsplit("/", 1)[-1]

    def __str__(self) -> str:
        quant = f":{self.quant}" if self.quant else ""
        revision = f"@{self.revision}" if self.revision else ""
        return f"{self.repo_id}{quant}{revision}"


def hub_reference(text: str | None, revision: str | None = None) -> HubReference | None:
    """A Hub reference, unless `text` is empty or an existing local path (a local folder
    named like `org/name` wins, as in transformers)."""
    if not text or Path(text).expanduser().exists():
        return None
    return HubReference.parse(text, revision)


def repo_id_of_snapshot(path: str | Path) -> str | None:
    """`org/name` when `path` is (inside) a snapshot folder of huggingface_hub's cache
    (`.../models--org--name/snapshots/<commit>`), else None."""
    for folder in (Path(path), *Path(path).parents):
        storage = folder.parent.parent
        if folder.parent.name == "snapshots" and storage.name.startswith("models--"):
            return storage.name.removeprefix("models--").replace("--", "/")
    return None


def choose_files(
    filenames: Iterable[str], reference: HubReference
) -> tuple[list[str] | None, list[str]]:
    """(allow_patterns, ignore_patterns) for the files a model needs: for a transformers
    repo, safetensors when there are any (never two weight formats); for a GGUF repo, the
    one quantisation asked for (all its shards)."""
    names = list(filenames)
    ggufs = sorted(n for n in names if n.endswith(".gguf"))
    if ggufs and ("config.json" not in names or reference.quant):
        chosen = _gguf_choice(ggufs, reference)
        return [*chosen, "*.json", "README.md"], []
    ignore = [*_NEVER, *_NEVER_FOLDERS, "*.gguf"]
    safetensors = [n for n in names if n.endswith(".safetensors")]
    if safetensors:
        ignore += _PICKLED
        if any(not Path(n).name.startswith("consolidated") for n in safetensors):
            ignore.append("consolidated*")  # Mistral's single-file copy of the same weights
    return None, ignore


def gguf_file(folder: Path, reference: HubReference) -> Path:
    """The (first shard's) GGUF file of `reference`'s quantisation in a snapshot folder,
    which may hold other quantisations pulled before."""
    present = [str(p.relative_to(folder)) for p in folder.rglob("*.gguf")]
    return folder / _gguf_choice(sorted(present), reference)[0]


def _gguf_choice(ggufs: list[str], reference: HubReference) -> list[str]:
    quant = (reference.quant or "").lower()
    matching = [n for n in ggufs if not quant or quant in Path(n).name.lower()]
    firsts = sorted({_SHARD.sub(".gguf", n) for n in matching})
    if len(firsts) != 1:
        offered = ", ".join(sorted({_quant_label(n) for n in ggufs}))
        what = f"no GGUF file matches {reference.quant!r}" if quant else "several GGUF files"
        raise ModelNotFoundError(
            f"{reference.repo_id}: {what}; pick one as {reference.repo_id}:QUANT "
            f"(offered: {offered})"
        )
    stem = firsts[0].removesuffix(".gguf")
    return [n for n in matching if n == firsts[0] or n.startswith(stem + "-")]


def _quant_label(filename: str) -> str:
    stem = _SHARD.sub("", Path(filename).name).removesuffix(".gguf")
    return stem.rsplit(".", 1)[-1] if "." in stem else stem.rsplit("-", 1)[-1]


def wanted(filename: str, allow: list[str] | None, ignore: list[str]) -> bool:
    if allow is not None and not any(fnmatch(filename, p) for p in allow):
        return False
    return not any(fnmatch(filename, p) for p in ignore)


def fetch(reference: HubReference, *, progress: bool = True) -> Path:
    """The local snapshot folder of `reference`, downloaded into the Hub cache when it is
    not there (resuming a cut download). Offline (HF_HUB_OFFLINE=1, or the Hub cannot be
    reached), the cached snapshot, if complete."""
    from huggingface_hub import constants

    if constants.HF_HUB_OFFLINE:
        folder = _cached(reference, None)
    else:
        try:
            commit, sizes = _listing(reference)
        except _Unreachable as unreachable:
            folder = _cached(reference, unreachable.reason)
        else:
            allow, ignore = choose_files(sizes, reference)
            _check_disk(reference, _missing_bytes(reference, commit, sizes, allow, ignore))
            folder = _download(reference, allow, ignore, progress=progress)
    base = adapter_base(folder)
    if base is not None:  # a PEFT adapter brings its base model
        fetch(base, progress=progress)
    return folder


def adapter_base(folder: Path) -> HubReference | None:
    """The Hub base model a PEFT adapter folder names, if it is one."""
    from palestra.models.inspect import read_json

    config = read_json(folder / "adapter_config.json") or {}
    return hub_reference(str(config.get("base_model_name_or_path") or ""))


class _Unreachable(Exception):
    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def _listing(reference: HubReference) -> tuple[str, dict[str, int]]:
    """The revision's commit and the repo's files and sizes there (errors as one line that
    says what to do)."""
    from huggingface_hub import HfApi

    try:
        info = HfApi().model_info(
            reference.repo_id, revision=reference.revision, files_metadata=True
        )
    except Exception as exc:
        if _is_unreachable(exc):
            raise _Unreachable(f"the Hub at {_endpoint()} cannot be reached ({exc})") from exc
        raise _hub_error(reference, exc) from exc
    return str(info.sha), {s.rfilename: int(s.size or 0) for s in info.siblings or []}


def _missing_bytes(
    reference: HubReference,
    commit: str,
    sizes: dict[str, int],
    allow: list[str] | None,
    ignore: list[str],
) -> int:
    """Bytes still to download: the wanted files not yet in the commit's snapshot."""
    snapshot = repo_storage(reference.repo_id) / "snapshots" / commit
    return sum(
        size
        for name, size in sizes.items()
        if wanted(name, allow, ignore) and not (snapshot / name).exists()
    )


_NETWORK_ERRORS = {"ConnectError", "ConnectTimeout", "TimeoutException", "NetworkError"}


def _is_unreachable(exc: BaseException) -> bool:
    """A connection that failed (huggingface_hub's HTTP client's errors, whichever it is)."""
    return isinstance(exc, (ConnectionError, TimeoutError)) or any(
        cls.__name__ in _NETWORK_ERRORS for cls in type(exc).__mro__
    )


def _download(
    reference: HubReference, allow: list[str] | None, ignore: list[str], *, progress: bool
) -> Path:
    from huggingface_hub import snapshot_download
    from huggingface_hub.utils import disable_progress_bars, enable_progress_bars

    if not progress:
        disable_progress_bars()
    try:
        folder = snapshot_download(
            reference.repo_id,
            revision=reference.revision,
            allow_patterns=allow,
            ignore_patterns=ignore,
        )
    except OSError as exc:
        if getattr(exc, "errno", None) == 28:  # ENOSPC
            raise HubError(_disk_message(reference, str(cache_dir()))) from exc
        raise _hub_error(reference, exc) from exc
    except Exception as exc:
        raise _hub_error(reference, exc) from exc
    finally:
        if not progress:
            enable_progress_bars()
    return Path(folder)


def _cached(reference: HubReference, reason: str | None) -> Path:
    """The complete cached snapshot, or an error saying how to get it."""
    from huggingface_hub import snapshot_download

    why = reason or "HF_HUB_OFFLINE is set"
    folder = _snapshot_folder(reference)
    if folder is None:
        raise ModelNotFoundError(
            f"{reference} is not in the Hugging Face cache ({cache_dir()}) and {why}; "
            f"run `palestra pull {reference}` where the Hub is reachable"
        )
    present = [str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()]
    allow, ignore = choose_files(present, reference)
    try:
        snapshot_download(
            reference.repo_id,
            revision=reference.revision,
            allow_patterns=allow,
            ignore_patterns=ignore,
            local_files_only=True,
        )
    except Exception as exc:
        raise ModelNotFoundError(
            f"{reference} is only partly in the Hugging Face cache and {why}; "
            f"run `palestra pull {reference}` where the Hub is reachable to finish it"
        ) from exc
    return folder


def _snapshot_folder(reference: HubReference) -> Path | None:
    storage = repo_storage(reference.repo_id)
    revision = reference.revision or "main"
    ref_file = storage / "refs" / revision
    commit = ref_file.read_text().strip() if ref_file.is_file() else revision
    folder = storage / "snapshots" / commit
    return folder if folder.is_dir() else None


def cache_dir() -> Path:
    """huggingface_hub's cache folder (HF_HUB_CACHE, else HF_HOME/hub)."""
    from huggingface_hub import constants

    return Path(constants.HF_HUB_CACHE)


def repo_storage(repo_id: str) -> Path:
    """A model repo's folder in the cache (`models--org--name`: blobs, refs, snapshots)."""
    from huggingface_hub.file_download import repo_folder_name

    return cache_dir() / repo_folder_name(repo_id=repo_id, repo_type="model")


def _endpoint() -> str:
    from huggingface_hub import constants

    return str(constants.ENDPOINT)


def _check_disk(reference: HubReference, needed: int) -> None:
    folder = cache_dir()
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    free = shutil.disk_usage(folder).free
    if needed > free:
        raise HubError(_disk_message(reference, str(folder), needed, free))


def _disk_message(reference: HubReference, where: str, needed: int = 0, free: int = 0) -> str:
    sizes = f" ({_gib(needed)} needed, {_gib(free)} free)" if needed else ""
    return (
        f"not enough disk space for {reference} in {where}{sizes}; free some "
        "(`palestra list`, `palestra rm ID`) or point HF_HUB_CACHE at a larger disk"
    )


def _gib(size: int) -> str:
    return f"{size / 2**30:.1f} GiB"


def _hub_error(reference: HubReference, exc: Exception) -> PalestraError:
    """One line per thing that can go wrong, saying what to do."""
    from huggingface_hub.errors import (
        GatedRepoError,
        HfHubHTTPError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    login = "log in with `hf auth login` or set HF_TOKEN"
    if isinstance(exc, GatedRepoError):
        return AuthenticationError(
            f"{reference.repo_id} is gated: accept its terms on "
            f"{_endpoint()}/{reference.repo_id}, then {login}"
        )
    if isinstance(exc, RepositoryNotFoundError):
        return ModelNotFoundError(
            f"no model {reference.repo_id!r} on the Hub ({_endpoint()}); check the id, "
            f"or if it is private, {login}"
        )
    if isinstance(exc, RevisionNotFoundError):
        return ModelNotFoundError(
            f"{reference.repo_id} has no revision {reference.revision!r} "
            "(a branch, tag or commit of the repo)"
        )
    if isinstance(exc, HfHubHTTPError) and exc.response is not None:
        status = exc.response.status_code
        if status == 401:
            return AuthenticationError(f"the Hub refused the token for {reference}: {login}")
        return HubError(f"the Hub answered {status} for {reference}; try again later")
    return HubError(f"could not fetch {reference} from {_endpoint()}: {exc}")
