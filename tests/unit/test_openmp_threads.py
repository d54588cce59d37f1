"""A serving process gives torch's cores to the batch engine's thread only: torch loads
with one OpenMP thread (no helper team beside the engine's), the engine thread decodes
with the count torch would have used, and the environment the process hands on to the
processes it starts is left as it was."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

SCRIPT = """
import asyncio, json, os
from palestra.backends.hf.openmp import reserve_cores_for_the_engine
reserve_cores_for_the_engine()
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
backend = HFBackend.load(None, device="cpu")
prompt = backend.chat_prompt([Message("user", "Hi")])
request = GenerationRequest(prompt, SamplingParams(temperature=0, max_tokens=4, ignore_eos=True))

async def generate():
    return "".join([chunk.text async for chunk in backend.generate(request)])

text = asyncio.run(generate())
print(json.dumps({"main": main_threads, "engine": sorted(set(engine_threads)),
                  "env": os.environ.get("OMP_NUM_THREADS"), "text": text}))
"""


@pytest.mark.parametrize("given", [None, "3"])
def test_the_engine_thread_gets_the_cores_and_the_environment_is_kept(given: str | None) -> None:
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    if given is not None:
        env["OMP_NUM_THREADS"] = given
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, env=env, timeout=300
    )
    assert result.returncode == 0, result.stderr
    seen = json.loads(result.stdout.strip().splitlines()[-1])
    assert seen["main"] == 1  # no OpenMP team on the main thread
    cores = int(given) if given else len(os.sched_getaffinity(0))
    assert seen["engine"] == [cores]
    assert seen["env"] == given  # what child processes inherit is unchanged
    assert seen["text"]
