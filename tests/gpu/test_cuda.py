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


def test_device_map_over_all_visible_gpus() -> None:
    from palestra.models.inspect import bundled_model_path

    count = torch.cuda.device_count()
    if count < 2:
        pytest.skip("a device map over GPUs needs two of them")
    # A cap per GPU well under the model's size (fp32), so no one GPU can hold it alone.
    size = sum(p.stat().st_size for p in bundled_model_path().glob("*.safetensors"))
    cap = f"{int(size / count * 0.75 / 1024)}KiB"
    backend = HFBackend.load(
        None, device="cuda", dtype="float32", num_gpus=count, max_gpu_memory=cap
    )
    placed = set(backend.model.hf_device_map.values())
    assert set(range(count)) <= placed, backend.model.hf_device_map  # every GPU holds layers
    assert _generate(backend)


def test_load_8bit_holds_int8_weights(random_llama_dir: Path) -> None:
    pytest.importorskip("bitsandbytes")
    backend = HFBackend.load(str(random_llama_dir), device="cuda", load_8bit=True)
    projection = backend.model.model.layers[0].self_attn.q_proj
    assert type(projection).__name__ == "Linear8bitLt"
    assert projection.weight.dtype == torch.int8
    full = HFBackend.load(str(random_llama_dir), device="cuda", dtype="float16")
    assert backend.model.get_memory_footprint() < full.model.get_memory_footprint()
    assert _generate(backend)


def test_a_vision_model_on_cuda_answers_as_on_cpu(tmp_path: Path) -> None:
    import base64

    from palestra.core.types import Conversation, Message
    from tests.fakes.vision_model import build_tiny_vision_model, png_bytes

    folder = build_tiny_vision_model(tmp_path / "tiny-llava")
    image = "data:image/png;base64," + base64.b64encode(png_bytes()).decode()
    request = GenerationRequest(
        sampling=SamplingParams(temperature=0, max_tokens=16),
        conversation=Conversation((Message("user", "What is the capital of Italy?", (image,)),)),
    )

    async def answer(backend: HFBackend) -> str:
        prepared = backend.prepare(request)
        return "".join([c.text async for c in backend.generate(prepared)])

    gpu = HFBackend.load(str(folder), device="cuda", dtype="float32")
    cpu = HFBackend.load(str(folder), device="cpu", dtype="float32")
    assert asyncio.run(answer(gpu)) == asyncio.run(answer(cpu))


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
    assert backend.engine is not None and backend.engine.peak_batch > 1
