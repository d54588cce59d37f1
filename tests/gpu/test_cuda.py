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
