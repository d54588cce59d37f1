"""The API contract, whole: schemathesis generates requests from the API server's own
OpenAPI document (every check, at least 100 examples per operation) against a real
controller, worker and API server on loopback, and reports no failure: no 5xx, every
status and error body documented, schema-valid requests accepted, 405s with `Allow`."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.cluster import scripted_api

SEED = "20261130"
CONFIG = Path(__file__).with_name("schemathesis.toml")  # why chat completions may answer 400
# Schemathesis processes side by side, on disjoint operations: the run waits on the server
# far more than it computes (schemathesis's own --workers threads trip a CPython 3.11 ast
# race in its coverage phase). The largest request schemas get a process each.
LARGEST = ("/v1/chat/completions", "/v1/messages", "/v1/(responses|completions)")
GROUPS = [
    *(("--include-path-regex", f"^{path}$") for path in LARGEST),
    ("--exclude-path-regex", f"^({'|'.join(LARGEST)})$"),
]


@pytest.mark.slow
def test_schemathesis_finds_no_failure(tmp_path: Path) -> None:
    st = shutil.which("st", path=str(Path(sys.executable).parent))
    if st is None:
        pytest.skip("schemathesis is not installed (pip install 'palestra[dev]')")
    script = tmp_path / "script.json"
    script.write_text(json.dumps({"model_name": "scripted", "replies": ["Hello there."]}))
    # Generated http(s) image URLs would be fetched from made-up hosts: take data: URLs only.
    with scripted_api(script, "--no-fetch-image-urls") as api:
        command = [st, "--config-file", str(CONFIG), "run", f"{api.url}/openapi.json",
                   "--checks", "all", "--max-examples", "100", "--workers", "1",
                   "--seed", SEED, "--request-timeout", "30"]  # fmt: skip
        pipes = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE, "text": True}
        runs = [subprocess.Popen([*command, *group], cwd=tmp_path, **pipes) for group in GROUPS]
        outputs = [run.communicate(timeout=600) for run in runs]
    for run, (stdout, stderr) in zip(runs, outputs, strict=True):
        report = stdout[-6000:] + stderr[-2000:]
        assert run.returncode == 0, report
        assert "generated" in stdout and " failed" not in stdout, report
