"""`--torch-compile`: the batch engine's decode step compiled by torch.compile (inductor)
with the weights frozen into the graph, as vLLM compiles the models it serves. On a CPU,
inductor fuses the small operations around the matrix products (norms, rotary
embeddings, activations) and prepacks the weights for oneDNN, with the same tokens as
eager. It pays where a step is mostly per-operation overhead: 1.2-1.5x the tokens to one
client on the bundled model; at 16 clients, or on a ~50M model, within the noise
(benchmarks/README.md).

Only the decode step is compiled. It is most of a served model's time (77% of the engine
process at 16 clients, py-spy), and all its calls have one shape family (a token per row),
while prefills and prefix resumes come in many shapes and stay eager. Shapes are dynamic,
but torch gives batch size 1 a graph of its own and recompiles when the thread count
changes, so `compile_decode` compiles every variant the engine meets (batch 1 and 2+,
padded or not, at each thread count it uses) before the model is served: no request ever
waits for a compile. That costs time at every start (inductor's caches do not cover
frozen graphs: 25-70 s for the bundled model on 2 cores) and memory (about 110 MiB there:
the compiler's state, and the frozen, prepacked weights beside the module's own).
"""

from __future__ import annotations

import logging
import os
import shutil
import sys
import time
from collections.abc import Callable, Iterable
from typing import Any

from palestra.backends.hf.cpu_threads import run_with_threads
from palestra.backends.hf.kv_batch import KVBatch

logger = logging.getLogger(__name__)

# The prompts decoded while compiling: one row, two rows of different lengths (a padded
# attention mask), two rows of the same length (none). Inductor tunes its kernels to the
# shapes it first sees, so they are as long as a short chat's prompt.
_SHORT, _LONG = list(range(1, 25)), list(range(1, 33))
WARM_UP_PROMPTS = ([_LONG], [_LONG, _SHORT], [_SHORT, _SHORT[::-1]])


def compile_refusal(kind: str, adapters: Iterable[str], device: Any) -> str | None:
    """Why --torch-compile cannot serve this model (None: it can)."""
    if kind != "chat":
        return f"--torch-compile compiles text models' decode step (this model's kind: {kind})"
    if list(adapters):
        return (
            "--torch-compile freezes the base weights into the compiled step, so it cannot "
            "serve PEFT adapters; drop --adapter or --torch-compile"
        )
    if not str(device).startswith(("cpu", "cuda")):
        return f"--torch-compile runs on a CPU or a CUDA GPU, not on {device}"
    if str(device).startswith("cpu") and _cxx_compiler() is None:
        return (
            "--torch-compile on a CPU needs a C++ compiler for inductor's kernels "
            "(install g++, or name one in CXX)"
        )
    return None


def _cxx_compiler() -> str | None:
    """The compiler inductor's CPU backend would call (its `cpp.cxx` default), if found."""
    wanted = os.environ.get("CXX") or ("clang++" if sys.platform == "darwin" else "g++")
    return shutil.which(wanted)


def compile_decode(model: Any, device: Any, thread_counts: Iterable[int]) -> Callable[..., Any]:
    """`model.forward` compiled for decode steps, every variant compiled already."""
    import torch
    import torch._inductor.config as inductor_config

    # Freezing applies to graphs compiled in inference mode, as the engine runs; set for
    # the process, so that a graph compiled later (a case the warm-up missed) is frozen too.
    inductor_config.freezing = True
    forward = torch.compile(model.forward, dynamic=True)

    def warm_up() -> None:
        with torch.inference_mode():
            for prompts in WARM_UP_PROMPTS:
                batch, logits = KVBatch.prefill(model, prompts, device)
                tokens = logits.argmax(-1).tolist()
                for _ in range(2):
                    tokens = batch.decode(forward, tokens).argmax(-1).tolist()

    print(  # a wait the user chose: said at every log level, as the engine hints are
        "--torch-compile: compiling the decode step before serving (a minute or so on a "
        "small CPU, at every start)",
        file=sys.stderr,
        flush=True,
    )
    started = time.perf_counter()
    for threads in sorted(set(thread_counts)):
        run_with_threads(threads, warm_up)
    logger.info("--torch-compile: decode step compiled in %.0f s", time.perf_counter() - started)
    return forward
