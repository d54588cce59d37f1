"""How many CPU threads the transformers backend's torch work gets, and on which thread.

torch's CPU build runs parallel operations with GNU OpenMP, which gives every thread that
runs one a team of helper threads of its own. A serving process would hold two teams: the
main thread's (started by `import torch` itself) and the batch engine thread's. With more
OpenMP threads than cores, libgomp stops busy-waiting between parallel regions (100 spins
instead of about 3 ms: its `env.c`), so each small operation of a decode step waits for a
sleeping helper to be woken.

So a command that runs the model (`palestra worker`, `chat`, `judge answer`) calls
`load_torch_teamless()` before torch is imported: torch loads with one OpenMP thread, and
no team starts on the main thread. The threads that run the model (the engine thread, model
loading, embeddings, scores, prompt logprobs, encoder-decoder decoding) call
`use_threads()`, which gives them `--threads`, else the user's OMP_NUM_THREADS, else the
usable cores less one. The core left over tokenizes, renders templates and serves HTTP
beside the engine, as vLLM's CPU backend reserves one for its serving process
(VLLM_CPU_NUM_OF_RESERVED_CPU); on 2 cores the engine then runs on one thread, with no team
and nothing spinning. From ALL_CORES_FROM running sequences, a step's matrices are large
enough that the engine thread takes every core (`engine_threads`), unless the user chose
the count. The environment is left as it was, for the processes the command starts.
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

T = TypeVar("T")


def usable_cpus() -> int:
    """The CPUs this process may run on (its affinity mask where the OS has one)."""
    if hasattr(os, "sched_getaffinity"):  # Linux; not macOS or Windows
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def _users_count(requested: int) -> int | None:
    """`requested` (--threads) when above 0, else OMP_NUM_THREADS as the user set it."""
    if requested > 0:
        return requested
    given = os.environ.get("OMP_NUM_THREADS", "")
    return int(given) if given.isdigit() and int(given) > 0 else None


def torch_threads(requested: int) -> int:
    """The threads for the model's torch work: the user's count (--threads, else
    OMP_NUM_THREADS), else the usable cores less one (at least one)."""
    return _users_count(requested) or max(1, usable_cpus() - 1)


# From this many running sequences a decode step's matrices are large enough that every core
# pays, the serving work's core included: +10-35% at 200 clients on 2 cores, in each of 5
# A/B rounds (benchmarks/README.md). Below it the serving work needs that core more.
ALL_CORES_FROM = 64


@dataclass(frozen=True)
class EngineThreads:
    """The engine thread's counts, resolved once: `small` below ALL_CORES_FROM running
    sequences, `big` from there on."""

    small: int
    big: int

    def for_batch(self, running: int) -> int:
        return self.big if running >= ALL_CORES_FROM else self.small


def engine_threads(requested: int) -> EngineThreads:
    """The user's count at every batch size (--threads, else OMP_NUM_THREADS); else the
    usable cores less one, and every usable core from ALL_CORES_FROM sequences."""
    chosen = _users_count(requested)
    if chosen is not None:
        return EngineThreads(chosen, chosen)
    cores = usable_cpus()
    return EngineThreads(max(1, cores - 1), cores)


def load_torch_teamless() -> None:
    """Import torch with one OpenMP thread, so the main thread never starts a team (no
    effect once torch is imported); the environment is put back as it was."""
    if "torch" in sys.modules:
        return
    given = os.environ.get("OMP_NUM_THREADS")
    os.environ["OMP_NUM_THREADS"] = "1"
    try:
        import torch  # noqa: F401  # libgomp reads OMP_NUM_THREADS once, as it loads
    finally:
        if given is None:
            del os.environ["OMP_NUM_THREADS"]
        else:
            os.environ["OMP_NUM_THREADS"] = given


def use_threads(requested: int) -> None:
    """Give the calling thread's torch work `torch_threads(requested)` threads."""
    import torch

    torch.set_num_threads(torch_threads(requested))


def run_with_threads(requested: int, work: Callable[[], T]) -> T:
    """`work()` in a passing thread given the threads (model loading: dtype conversions run
    in parallel); its OpenMP team ends with it, so none stays beside the engine's."""
    outcome: list[T] = []
    failure: list[BaseException] = []

    def target() -> None:
        try:
            use_threads(requested)
            outcome.append(work())
        except BaseException as exc:  # re-raised in the caller's thread
            failure.append(exc)

    thread = threading.Thread(target=target, name="palestra-load", daemon=True)
    thread.start()
    thread.join()
    if failure:
        raise failure[0]
    return outcome[0]
