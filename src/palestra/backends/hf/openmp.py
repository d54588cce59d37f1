"""Which thread of a serving process gets torch's CPU cores: the batch engine's.

torch's CPU build runs parallel operations with GNU OpenMP, which gives every thread
that runs one a team of helper threads of its own; `import torch` already starts the
main thread's. With the engine thread's team beside it, the process holds more OpenMP
threads than there are cores, and libgomp then stops busy-waiting between parallel
regions (100 spins instead of about 3 ms: its `env.c`), so every small operation of a
decode step waits for a helper to be woken. On 2 cores that made the bundled model's
decode in the engine 15-30% slower than plain `model.generate` on a main thread.

A command that serves (`palestra worker`, `palestra chat`) calls
`reserve_cores_for_the_engine()` before torch is imported: torch loads with one OpenMP
thread per thread (no team), and the engine thread's `take_the_cores()` gives it the
count torch would have used (the user's OMP_NUM_THREADS, else the usable CPUs). Torch
work that runs outside the engine (embeddings, scores, prompt logprobs, encoder-decoder
decoding) calls it too, so it is no slower than before. The environment is left as it
was, for the processes the command starts.
"""

from __future__ import annotations

import os
import sys

_engine_threads: int | None = None  # set by reserve_cores_for_the_engine


def reserve_cores_for_the_engine() -> None:
    """Import torch with one OpenMP thread (no effect once torch is imported)."""
    global _engine_threads
    if "torch" in sys.modules:
        return
    given = os.environ.get("OMP_NUM_THREADS")
    _engine_threads = int(given) if given and given.isdigit() else len(os.sched_getaffinity(0))
    os.environ["OMP_NUM_THREADS"] = "1"
    try:
        import torch  # noqa: F401  # libgomp reads OMP_NUM_THREADS once, as it loads
    finally:
        if given is None:
            del os.environ["OMP_NUM_THREADS"]
        else:
            os.environ["OMP_NUM_THREADS"] = given


def take_the_cores() -> None:
    """In the engine thread, before its first forward pass."""
    if _engine_threads:
        import torch

        torch.set_num_threads(_engine_threads)
