"""The transformers backend's CPU threads: torch loads with no OpenMP team on the main
thread, the engine decodes with --threads, else OMP_NUM_THREADS, else the usable cores less
one, and the environment handed on to child processes is left as it was."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from palestra.backends.hf import cpu_threads

SCRIPT = """
import asyncio, json, os, sys
from palestra.backends.hf.cpu_threads import load_torch_teamless
load_torch_teamless()
import torch
from palestra.backends.hf import engine
from palestra.backends.hf.backend import HFBackend
from palestra.core.types import GenerationRequest, Message, SamplingParams

main_threads = torch.get_num_threads()
engine_threads = []
decode = engine.BatchEngine._decode

def counting(self):
    engine_threads.append(torch.get_num_threads())
    return decode(self)

engine.BatchEngine._decode = counting
backend = HFBackend.load(None, device="cpu", threads=int(sys.argv[1]))
prompt = backend.chat_prompt([Message("user", "Hi")])
request = GenerationRequest(prompt, SamplingParams(temperature=0, max_tokens=4, ignore_eos=True))

async def generate():
    return "".join([chunk.text async for chunk in backend.generate(request)])

text = asyncio.run(generate())
print(json.dumps({"main": main_threads, "main_after": torch.get_num_threads(),
                  "engine": sorted(set(engine_threads)),
                  "env": os.environ.get("OMP_NUM_THREADS"), "text": text}))
"""


@pytest.mark.parametrize(
    ("given_env", "option", "expected"),
    [
        (None, 0, max(1, cpu_threads.usable_cpus() - 1)),  # one core left to HTTP
        ("3", 0, 3),  # the user's OMP_NUM_THREADS
        ("3", 2, 2),  # --threads over OMP_NUM_THREADS
    ],
)
def test_the_engine_thread_gets_the_threads_and_the_environment_is_kept(
    given_env: str | None, option: int, expected: int
) -> None:
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    if given_env is not None:
        env["OMP_NUM_THREADS"] = given_env
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(option)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    seen = json.loads(result.stdout.strip().splitlines()[-1])
    assert seen["main"] == seen["main_after"] == 1  # no OpenMP team on the main thread
    assert seen["engine"] == [expected]  # every decode step
    assert seen["env"] == given_env  # what child processes inherit is unchanged
    assert seen["text"]


def test_the_count_follows_option_then_environment_then_cores(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(cpu_threads, "usable_cpus", lambda: 8)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    assert cpu_threads.torch_threads(0) == 7
    assert cpu_threads.torch_threads(5) == 5
    monkeypatch.setenv("OMP_NUM_THREADS", "4")
    assert cpu_threads.torch_threads(0) == 4
    monkeypatch.setenv("OMP_NUM_THREADS", "junk")
    assert cpu_threads.torch_threads(0) == 7
    monkeypatch.setattr(cpu_threads, "usable_cpus", lambda: 1)
    assert cpu_threads.torch_threads(0) == 1  # never none


def test_a_failure_in_the_loading_thread_reaches_the_caller() -> None:
    def fails() -> None:
        raise FileNotFoundError("no such model")

    with pytest.raises(FileNotFoundError, match="no such model"):
        cpu_threads.run_with_threads(1, fails)
    assert cpu_threads.run_with_threads(1, lambda: 42) == 42
