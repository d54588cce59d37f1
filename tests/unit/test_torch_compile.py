"""`--torch-compile` on the bundled model: the compiled decode step gives the eager
engine's tokens (solo and batched, greedy and seeded sampling, newcomers joining a running
batch), every variant the engine meets is compiled while loading (serving compiles
nothing), and what it cannot serve is refused with the reason, as one line from the CLI."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from typing import Any

import pytest

from palestra.backends.hf.backend import HFBackend
from palestra.backends.hf.compiled import compile_refusal
from tests.unit.test_batching import collect, requests


@pytest.fixture(scope="module")
def eager() -> HFBackend:
    return HFBackend.load(None, device="cpu", max_batch_size=8)


@pytest.fixture(scope="module")
def compiled() -> HFBackend:
    return HFBackend.load(None, device="cpu", max_batch_size=8, torch_compile=True)


def graphs_compiled() -> int:
    from torch._dynamo.utils import counters

    return int(counters["stats"]["unique_graphs"])


def same_answers(eager_answers: list[Any], compiled_answers: list[Any]) -> None:
    """Text, tokens and finish reason equal; logprobs equal to fused arithmetic's rounding."""
    for mine, theirs in zip(compiled_answers, eager_answers, strict=True):
        assert mine[:3] == theirs[:3]
        for (token, logprob), (their_token, their_logprob) in zip(mine[3], theirs[3], strict=True):
            assert token == their_token and logprob == pytest.approx(their_logprob, abs=1e-3)


@pytest.mark.skipif(
    compile_refusal("chat", [], "cpu") is not None, reason="no C++ compiler for inductor"
)
def test_the_compiled_step_decodes_as_eager_and_compiles_nothing_while_serving(
    eager: HFBackend, compiled: HFBackend
) -> None:
    assert compiled.engine is not None and eager.engine is not None
    assert compiled.engine.decode_forward is not compiled.model  # the compiled step
    assert eager.engine.decode_forward is eager.model
    batch = requests(eager)
    compiled_before = graphs_compiled()
    assert compiled_before > 0

    async def solo(backend: HFBackend) -> list[Any]:
        return [await collect(backend, r) for r in batch]

    async def together(backend: HFBackend) -> list[Any]:
        delays = [0.0, 0.0, 0.0, 0.0, 0.01, 0.02, 0.05, 0.08]  # some join a running batch
        return list(
            await asyncio.gather(
                *(collect(backend, r, d) for r, d in zip(batch, delays, strict=True))
            )
        )

    engine = compiled.engine
    step = engine.decode_forward
    served_steps = 0

    def counted(*args: Any, **kwargs: Any) -> Any:  # every decode step, through the compiled one
        nonlocal served_steps
        served_steps += 1
        return step(*args, **kwargs)

    engine.decode_forward = counted
    steps_before = engine.steps
    try:
        reference = asyncio.run(solo(eager))
        same_answers(reference, asyncio.run(solo(compiled)))
        same_answers(reference, asyncio.run(together(compiled)))
    finally:
        engine.decode_forward = step
    assert served_steps == engine.steps - steps_before > 0
    assert engine.peak_batch > 1
    assert graphs_compiled() == compiled_before  # batch 1, 2+, padded: all compiled at load


def test_what_it_cannot_serve_is_refused_with_the_reason(monkeypatch: pytest.MonkeyPatch) -> None:
    assert compile_refusal("chat", [], "cpu") is None
    assert "(this model's kind: embedding)" in (compile_refusal("embedding", [], "cpu") or "")
    assert "cannot serve PEFT adapters" in (compile_refusal("chat", ["helper"], "cpu") or "")
    monkeypatch.setenv("CXX", "no-such-compiler++")
    assert "needs a C++ compiler" in (compile_refusal("chat", [], "cpu") or "")
    assert compile_refusal("chat", [], "cuda:0") is None  # inductor's GPU kernels are Triton
    assert "not on mps" in (compile_refusal("chat", [], "mps") or "")


def test_the_cli_says_so_in_one_line() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "palestra.cli.main", "chat", "--torch-compile", "--device", "cpu"],
        input="Hello\n",
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "CXX": "no-such-compiler++"},
    )
    assert result.returncode == 2 and "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("palestra: error:")]
    assert len(errors) == 1 and "--torch-compile on a CPU needs a C++ compiler" in errors[0]
