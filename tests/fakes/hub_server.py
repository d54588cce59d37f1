"""A loopback stand-in for the Hugging Face Hub, as strict as the Hub for what
huggingface_hub asks of it: repo info with file metadata (`/api/models/ORG/NAME[/revision/
REV]`), recursive tree listings, and file downloads (`/ORG/NAME/resolve/REV/FILE`, HEAD and
GET, with `X-Repo-Commit`, `ETag`, sizes and byte ranges for resuming).

Errors carry the Hub's `X-Error-Code` headers, so huggingface_hub raises its own typed
errors: an unknown repo is 404 `RepoNotFound`, an unknown revision 404 `RevisionNotFound`,
a missing file 404 `EntryNotFound`, a gated repo 401 `GatedRepo` unless the request carries
the token the test granted (`Authorization: Bearer ...`).

Tests publish folders as commits (`publish`), tag revisions, gate repos, and can make the
first download of a file break after some bytes (`cut_once`; huggingface_hub keeps what it
received in 10 MiB chunks and resumes from there with a Range request). Every request is recorded in
`hub.requests` as (method, path, Range header).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

LFS_SUFFIXES = (".safetensors", ".bin", ".gguf", ".pt")


@dataclass
class Repo:
    repo_id: str
    refs: dict[str, str] = field(default_factory=dict)  # branch/tag -> commit
    commits: dict[str, dict[str, bytes]] = field(default_factory=dict)
    gated: bool = False

    def commit_of(self, revision: str) -> str | None:
        revision = unquote(revision)
        if revision in self.refs:
            return self.refs[revision]
        return revision if revision in self.commits else None


@dataclass
class FakeHub:
    repos: dict[str, Repo] = field(default_factory=dict)
    granted_token: str = "hf_granted_token"
    requests: list[tuple[str, str, str | None]] = field(default_factory=list)
    cut_once: dict[str, int] = field(default_factory=dict)  # file name -> bytes sent, once

    def publish(
        self, repo_id: str, files: dict[str, bytes] | Path, *, revision: str = "main"
    ) -> str:
        """Commit `files` (a mapping or a folder) to `repo_id` on branch/tag `revision`;
        returns the commit hash."""
        if isinstance(files, Path):
            files = {
                str(p.relative_to(files)): p.read_bytes() for p in files.rglob("*") if p.is_file()
            }
        repo = self.repos.setdefault(repo_id, Repo(repo_id))
        digest = hashlib.sha1(repo_id.encode())
        for name in sorted(files):
            digest.update(name.encode() + hashlib.sha1(files[name]).digest())
        digest.update(revision.encode())
        commit = digest.hexdigest()
        repo.commits[commit] = dict(files)
        repo.refs[revision] = commit
        return commit


def _error(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse(
        {"error": message}, status, headers={"X-Error-Code": code, "X-Error-Message": message}
    )


def _is_lfs(name: str) -> bool:
    return name.endswith(LFS_SUFFIXES)


def _git_oid(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def _entry(name: str, data: bytes) -> dict:
    entry: dict = {"type": "file", "path": name, "size": len(data), "oid": _git_oid(data)}
    if _is_lfs(name):
        sha = hashlib.sha256(data).hexdigest()
        entry["lfs"] = {"oid": sha, "size": len(data), "pointerSize": 134}
    return entry


def build_hub_app(hub: FakeHub) -> FastAPI:
    app = FastAPI()

    @app.middleware("http")
    async def record(request: Request, call_next):  # type: ignore[no-untyped-def]
        hub.requests.append((request.method, request.url.path, request.headers.get("range")))
        return await call_next(request)

    @app.get("/health")
    async def health() -> dict:
        return {"ok": True}

    def find(request: Request, org: str, name: str, revision: str) -> tuple[Repo, str] | Response:
        repo = hub.repos.get(f"{org}/{name}")
        if repo is None:
            return _error(404, "RepoNotFound", "Repository not found")
        if repo.gated:
            token = request.headers.get("authorization", "")
            if token != f"Bearer {hub.granted_token}":
                return _error(
                    401, "GatedRepo", "Access to model is restricted. You must be authenticated."
                )
        commit = repo.commit_of(revision)
        if commit is None:
            return _error(404, "RevisionNotFound", f"Invalid rev id: {revision}")
        return repo, commit

    async def info(request: Request, org: str, name: str, revision: str) -> Response:
        found = find(request, org, name, revision)
        if isinstance(found, Response):
            return found
        repo, commit = found
        files = repo.commits[commit]
        siblings = []
        for entry in (_entry(n, d) for n, d in sorted(files.items())):
            sibling = {"rfilename": entry["path"], "size": entry["size"], "blobId": entry["oid"]}
            if "lfs" in entry:
                lfs = entry["lfs"]
                sibling["lfs"] = {
                    "size": lfs["size"],
                    "sha256": lfs["oid"],
                    "pointerSize": lfs["pointerSize"],
                }
            siblings.append(sibling)
        return JSONResponse(
            {
                "_id": repo.repo_id,
                "id": repo.repo_id,
                "modelId": repo.repo_id,
                "sha": commit,
                "private": False,
                "gated": "manual" if repo.gated else False,
                "disabled": False,
                "tags": [],
                "siblings": siblings,
            }
        )

    @app.get("/api/models/{org}/{name}")
    async def model_info(request: Request, org: str, name: str) -> Response:
        return await info(request, org, name, "main")

    @app.get("/api/models/{org}/{name}/revision/{revision:path}")
    async def model_info_at(request: Request, org: str, name: str, revision: str) -> Response:
        return await info(request, org, name, revision)

    @app.get("/api/models/{org}/{name}/tree/{revision:path}")
    async def tree(request: Request, org: str, name: str, revision: str) -> Response:
        found = find(request, org, name, revision)
        if isinstance(found, Response):
            return found
        repo, commit = found
        return JSONResponse([_entry(n, d) for n, d in sorted(repo.commits[commit].items())])

    @app.api_route("/{org}/{name}/resolve/{revision}/{filename:path}", methods=["GET", "HEAD"])
    async def resolve(request: Request, org: str, name: str, revision: str, filename: str):  # type: ignore[no-untyped-def]
        found = find(request, org, name, revision)
        if isinstance(found, Response):
            return found
        repo, commit = found
        data = repo.commits[commit].get(filename)
        if data is None:
            return _error(404, "EntryNotFound", f"{filename} does not exist at {revision}")
        entry = _entry(filename, data)
        etag = entry["lfs"]["oid"] if "lfs" in entry else entry["oid"]
        headers = {"X-Repo-Commit": commit, "ETag": f'"{etag}"', "Accept-Ranges": "bytes"}
        if request.method == "HEAD":
            headers["Content-Length"] = str(len(data))
            return Response(status_code=200, headers=headers)
        start = 0
        ranged = request.headers.get("range")
        if ranged and ranged.startswith("bytes="):
            start = int(ranged.removeprefix("bytes=").split("-", 1)[0] or 0)
        body = data[start:]
        if start:
            headers["Content-Range"] = f"bytes {start}-{len(data) - 1}/{len(data)}"
        headers["Content-Length"] = str(len(body))
        cut_at = hub.cut_once.pop(filename, None) if not start else None

        async def chunks():  # type: ignore[no-untyped-def]
            step = 1 << 16
            for offset in range(0, len(body), step):
                if cut_at is not None and offset >= cut_at:
                    raise ConnectionResetError("stand-in Hub cut the connection")
                yield body[offset : offset + step]

        return StreamingResponse(chunks(), status_code=206 if start else 200, headers=headers)

    return app
