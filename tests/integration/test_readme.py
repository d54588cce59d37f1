"""The README's promises, run for real: the two commands, and the curl and openai SDK
snippets against `palestra serve` (on free ports instead of the defaults)."""

from __future__ import annotations

import re
import shlex
import signal
import subprocess
import sys
from pathlib import Path

import httpx

from tests.integration.cluster import CLI, free_port, wait_for

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()


def _blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", README, flags=re.S)


def test_readme_starts_with_the_two_commands() -> None:
    first = _blocks("bash")[0].strip().splitlines()
    assert [line.split("#")[0].strip() for line in first] == ["make run", "make test"]
    assert "make test" in (ROOT / ".ci" / "run").read_text()
    makefile = (ROOT / "Makefile").read_text()
    assert "$(BIN)/palestra serve" in makefile.split("\nrun:")[1].split("\n\n")[0]


def test_serve_with_the_readme_snippets(tmp_path: Path) -> None:
    ports = {"api": free_port(), "controller": free_port(), "worker": free_port()}
    ports["webui"] = free_port()
    store = tmp_path / "arena.db"
    serve = subprocess.Popen(
        [
            *CLI,
            "serve",
            "--port",
            str(ports["api"]),
            "--controller-port",
            str(ports["controller"]),
            "--worker-port",
            str(ports["worker"]),
            "--webui-port",
            str(ports["webui"]),
            "--store",
            f"sqlite:///{store}",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    base = f"http://127.0.0.1:{ports['api']}"
    try:
        wait_for(
            lambda: httpx.get(base + "/v1/models", timeout=2).json()["data"] != [],
            90,
            "palestra serve",
        )
        curl = _blocks("bash")[1].replace("127.0.0.1:8000", f"127.0.0.1:{ports['api']}")
        result = subprocess.run(
            shlex.split(curl.replace("\\\n", " ")),
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        )
        assert (
            "Palestra"
            in httpx.Response(200, content=result.stdout).json()["choices"][0]["message"]["content"]
        )
        snippet = _blocks("python")[0].replace("127.0.0.1:8000", f"127.0.0.1:{ports['api']}")
        run = subprocess.run(
            [sys.executable, "-c", snippet], capture_output=True, text=True, timeout=60
        )
        assert run.returncode == 0, run.stderr
        assert "Paris" in run.stdout
        page = httpx.get(f"http://127.0.0.1:{ports['webui']}/", timeout=10)
        assert page.status_code == 200 and "gradio" in page.text.lower()  # the web UI
    finally:
        serve.send_signal(signal.SIGINT)
        out, _ = serve.communicate(timeout=30)
    assert serve.returncode == 0  # Ctrl-C stops everything cleanly
    assert f"OpenAI API  {base}/v1" in out
    assert f"web UI      http://127.0.0.1:{ports['webui']}" in out
