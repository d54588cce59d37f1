"""GPU tier: the transformers backend on CUDA (one GPU, device maps over several, 8-bit).
Skipped where no CUDA GPU is visible; CI has none."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
import torch

from palestra.backends.hf.backend import HFBackend
from palestra.core.types import GenerationRequest, SamplingParams

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU"),
]


def _generate(backend: HFBackend) -> str:
    async def collect() -> str:
        request = GenerationRequest("The sky is", SamplingParams(temperature=0, max_tokens=8))
        return "".join([c.text async for c in backend.generate(request)])

    return asyncio.run(collect())


def test_cuda_matches_cpu_greedy(random_llama_dir: Path) -> None:
    cpu = HFBackend.load(str(random_llama_dir), device="cpu", dtype="float32")
    gpu = HFBackend.load(str(random_llama_dir), device="cuda", dtype="float32")
    assert gpu.loaded.device.type == "cuda"
    assert _generate(gpu) == _generate(cpu)


def test_device_map_over_all_visible_gpus(random_llama_dir: Path) -> None:
    count = torch.cuda.device_count()
    backend = HFBackend.load(
        str(random_llama_dir), device="cuda", num_gpus=count, max_gpu_memory="2GiB"
    )
    assert _generate(backend)


def test_load_8bit(random_llama_dir: Path) -> None:
    pytest.importorskip("bitsandbytes")
    backend = HFBackend.load(str(random_llama_dir), device="cuda", load_8bit=True)
    assert _generate(backend) is not None


def test_cuda_batch_matches_solo_runs() -> None:
    """Continuous batching on CUDA: concurrent greedy requests get their solo tokens."""
    backend = HFBackend.load(None, device="cuda", dtype="float32", max_batch_size=8)
    questions = ["Hello! Who are you?", "What is 3 plus 4?", "What color is snow?", "Hi"] * 2

    async def one(question: str) -> list[int]:
        prompt = backend.chat_prompt([{"role": "user", "content": question}])
        request = GenerationRequest(prompt, SamplingParams(temperature=0, max_tokens=24))
        return [t async for c in backend.generate(request) for t in c.token_ids]

    async def scenario() -> tuple[list[list[int]], list[list[int]]]:
        solo = [await one(q) for q in questions]
        return solo, list(await asyncio.gather(*(one(q) for q in questions)))

    solo, together = asyncio.run(scenario())
    assert together == solo
    assert backend._engine is not None and backend._engine.peak_batch > 1
