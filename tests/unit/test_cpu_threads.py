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
    engine_threads.append((len(self._running), torch.get_num_threads()))
    return decode(self)

engine.BatchEngine._decode = counting
backend = HFBackend.load(None, device="cpu", threads=int(sys.argv[1]))
prompt = backend.chat_prompt([Message("user", "Hi")])
request = GenerationRequest(prompt, SamplingParams(temperature=0, max_tokens=4, ignore_eos=True))

async def generate():
    return "".join([chunk.text async for chunk in backend.generate(request)])

async def burst():  # sys.argv[2] requests at once
    return await asyncio.gather(*(generate() for _ in range(int(sys.argv[2]))))

texts = asyncio.run(burst())
print(json.dumps({"main": main_threads, "main_after": torch.get_num_threads(),
                  "engine": sorted(set(engine_threads)),
                  "env": os.environ.get("OMP_NUM_THREADS"), "texts": texts}))
"""


SMALL = max(1, cpu_threads.usable_cpus() - 1)


@pytest.mark.parametrize(
    ("given_env", "option", "burst", "below", "from_64"),
    [
        # one core left to the serving work; every core from 64 running sequences
        (None, 0, 1, SMALL, cpu_threads.usable_cpus()),
        (None, 0, 70, SMALL, cpu_threads.usable_cpus()),
        ("3", 0, 70, 3, 3),  # the user's OMP_NUM_THREADS, whatever the batch
        ("3", 2, 1, 2, 2),  # --threads over OMP_NUM_THREADS
    ],
)
def test_the_engine_thread_gets_the_threads_and_the_environment_is_kept(
    given_env: str | None, option: int, burst: int, below: int, from_64: int
) -> None:
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    if given_env is not None:
        env["OMP_NUM_THREADS"] = given_env
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(option), str(burst)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    seen = json.loads(result.stdout.strip().splitlines()[-1])
    assert seen["main"] == seen["main_after"] == 1  # no OpenMP team on the main thread
    steps = [tuple(step) for step in seen["engine"]]  # (running, threads) of each decode
    assert steps and all(
        threads == (from_64 if running >= cpu_threads.ALL_CORES_FROM else below)
        for running, threads in steps
    ), steps
    if burst >= cpu_threads.ALL_CORES_FROM:
        assert max(running for running, _ in steps) >= cpu_threads.ALL_CORES_FROM
    assert seen["env"] == given_env  # what child processes inherit is unchanged
    assert len(seen["texts"]) == burst and all(seen["texts"])


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
    auto = cpu_threads.engine_threads(0)
    assert (auto.for_batch(63), auto.for_batch(64)) == (7, 8)  # every core for a big batch
    assert cpu_threads.engine_threads(5).for_batch(200) == 5  # the user's count stands
    monkeypatch.setenv("OMP_NUM_THREADS", "4")
    assert cpu_threads.engine_threads(0).for_batch(200) == 4
    monkeypatch.setattr(cpu_threads, "usable_cpus", lambda: 1)
    monkeypatch.delenv("OMP_NUM_THREADS")
    assert cpu_threads.torch_threads(0) == 1  # never none


def test_a_failure_in_the_loading_thread_reaches_the_caller() -> None:
    def fails() -> None:
        raise FileNotFoundError("no such model")

    with pytest.raises(FileNotFoundError, match="no such model"):
        cpu_threads.run_with_threads(1, fails)
    assert cpu_threads.run_with_threads(1, lambda: 42) == 42
