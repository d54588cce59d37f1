"""The options of the built-in backends, one settings class each, and `ModelSettings`
(which models a worker or chat loads, whatever the backend).

A backend's factory names its options class; commands offer every backend's options and
pass the chosen backend only its own (an option of another backend is an error that lists
the chosen backend's options), so nothing is silently ignored. Plugins' backends declare
their classes the same way.
"""

from __future__ import annotations

import sys
from typing import Any, Literal, TypeVar

from pydantic import field_validator

from palestra.backends.hf.cpu_threads import ALL_CORES_FROM
from palestra.core.errors import InvalidRequestError
from palestra.core.settings import Settings, option

OptionsT = TypeVar("OptionsT", bound=Settings)

TRUST_REMOTE_CODE_HELP = (
    "Run the Python code a model ships (ChatGLM, Qwen-1, ...); only if you trust it. "
    "The code comes from the --revision loaded."
)

# One flag, two backends (the measurements are in benchmarks/README.md): torch's small
# parallel regions lose more to the serving work beside them than a second thread gains,
# llama.cpp's kernels gain from every core.
THREADS_HELP = (
    "CPU threads for the model; 0: hf, OMP_NUM_THREADS when set, else the usable cores "
    f"less one (left to tokenizing and HTTP), all of them from {ALL_CORES_FROM} running "
    "sequences; llamacpp, all cores."
)


def given_options(
    cls: type[OptionsT], options: OptionsT | None, values: dict[str, Any]
) -> OptionsT:
    """A backend's options from a built object or from keyword values, never both (a
    keyword next to an options object would be silently lost); unknown names fail."""
    if options is not None and values:
        raise InvalidRequestError(
            f"give {cls.__name__} or its fields as keywords, not both: {', '.join(values)}"
        )
    return options if options is not None else cls(**values)


class ModelSettings(Settings):
    """Which models to load and how to serve them, for every backend."""

    model_path: list[str] = option(
        [],
        "Model folder, file or Hugging Face Hub id (org/name, org/name@REVISION, "
        "org/name:QUANT for a GGUF repo); repeat for several models. Default: the bundled model.",
    )
    model_names: list[str] = option(
        [], "The names to serve the models under, one per --model-path.", comma=True
    )
    revision: str | None = option(
        None, "Hub branch, tag or commit for Hub ids (the model's code too); default: main."
    )
    backend: str = option("hf", "hf, llamacpp, vllm, scripted, or a plugin's backend.")
    conv_template: str | None = option(
        None, "Chat template name or .jinja file; default: the tokenizer's own."
    )

    def local_path(self, index: int) -> str | None:
        """The index-th model as a local folder or file (a Hub id is fetched into the Hub
        cache at --revision first); None for the bundled model. Scripted and plugin
        backends' paths that are not Hub-shaped pass through as given."""
        if not self.model_path:
            return None
        from palestra.models.inspect import resolve_model_path

        return resolve_model_path(self.model_path[index], self.revision)


class HFOptions(Settings):
    """transformers: devices, dtypes, multi-GPU, 8-bit, PEFT adapters, continuous batching."""

    device: str = option("auto", "auto, cpu, cuda or mps.")
    dtype: str = option("auto", "auto, float32, float16 or bfloat16.")
    num_gpus: int = option(1, "GPUs to spread the model over (transformers: a device map).")
    max_gpu_memory: str | None = option(None, "Per GPU, e.g. 20GiB.")
    load_8bit: bool = option(False, "8-bit weights through bitsandbytes (CUDA).")
    trust_remote_code: bool = option(False, TRUST_REMOTE_CODE_HELP)
    adapter: list[str] = option([], "NAME=PATH: a PEFT adapter on the first model (repeatable).")
    max_batch_size: int = option(
        256,
        "Most sequences decoded together (continuous batching); memory may admit fewer.",
        minimum=1,
    )
    kv_cache_memory: str = option(
        "auto",
        "Memory for key/values (running sequences and the prefix cache), e.g. 4GiB; "
        "auto: half of what the loaded model leaves free (on a CPU at most 4GiB).",
    )
    max_cached_tokens: int = option(
        0,
        "Key/value slots for running sequences; 0: 3/4 of what --kv-cache-memory holds.",
        minimum=0,
    )
    prefix_cache_tokens: int = option(
        -1, "Prompt key/values kept for reuse; -1: 1/4 of what --kv-cache-memory holds, 0: off."
    )
    threads: int = option(0, THREADS_HELP, minimum=0)
    torch_compile: bool = option(
        False,
        "Compile the batch engine's decode step with torch.compile (inductor, weights "
        "frozen). Pays on very small models at low concurrency (1.2-1.5x for one client on "
        "the bundled model); costs a compile at every start (25-70 s on 2 cores). Text "
        "models without adapters; a CPU needs g++.",
    )
    engine_process: Literal["auto", "on", "off"] = option(
        "auto",
        "Run a text model's batch engine in a process of its own (vLLM's EngineCore), so "
        "the worker's HTTP work never holds it back. auto: on in `palestra worker` and "
        "`serve` (not on Windows), off where a command runs the model itself (chat, judge).",
    )

    @field_validator("kv_cache_memory")
    @classmethod
    def _memory(cls, value: str) -> str:
        from palestra.backends.hf.kv_budget import parse_memory

        parse_memory(value)
        return value

    @property
    def adapters(self) -> dict[str, str]:
        mapping: dict[str, str] = {}
        for spec in self.adapter:
            name, sep, path = spec.partition("=")
            if not sep or not name or not path:
                raise InvalidRequestError(f"--adapter {spec!r}: expected NAME=PATH")
            mapping[name] = path
        return mapping

    @property
    def capacity(self) -> int:
        return self.max_batch_size

    def serving(self) -> HFOptions:
        """A worker serves many requests at once: there `auto` runs the engine apart (POSIX
        only: the engine process gets its socket as a file descriptor)."""
        if self.engine_process != "auto":
            return self
        wanted = "off" if sys.platform == "win32" else "on"
        return self.model_copy(update={"engine_process": wanted})


class LlamaCppOptions(Settings):
    """llama.cpp (GGUF files): sequences batched together, threads, context length, GPU
    layers."""

    parallel: int = option(
        4,
        "Sequences decoded together in one context (continuous batching); each has its own "
        "key/values of --context-length tokens.",
        minimum=1,
    )
    threads: int = option(0, THREADS_HELP, minimum=0)
    context_length: int = option(0, "Context length per sequence (n_ctx); 0: the model's own.")
    gpu_layers: int = option(0, "Layers offloaded to the GPU; -1: all.")
    repack_weights: Literal["auto", "on", "off"] = option(
        "auto",
        "Repack quantised weights for the CPU's matrix units (llama.cpp's extra buffer "
        "types). auto: off on CPUs with AMX, whose repacked kernels crash (llama.cpp "
        "issue 20824), on elsewhere.",
    )

    @property
    def capacity(self) -> int:
        return max(1, self.parallel)

    def repacks(self, cpu_flags: frozenset[str]) -> bool:
        if self.repack_weights == "auto":
            return "amx_int8" not in cpu_flags
        return self.repack_weights == "on"


class VLLMOptions(Settings):
    """vLLM on GPUs: tensor parallelism, memory share, multi-node executor."""

    dtype: str = option("auto", "auto, float32, float16 or bfloat16.")
    num_gpus: int = option(1, "GPUs for tensor parallelism.")
    gpu_memory_utilization: float = option(0.85, "Share of each GPU's memory vLLM may take.")
    distributed_executor_backend: Literal["mp", "ray"] | None = option(
        None, "mp (one machine) or ray (several machines, `ray start` on each first)."
    )
    max_model_len: int = option(0, "Context length; 0: the model's own.")
    max_num_seqs: int = option(256, "Sequences vLLM schedules together.")
    trust_remote_code: bool = option(False, TRUST_REMOTE_CODE_HELP)

    @property
    def capacity(self) -> int:
        return self.max_num_seqs


class ScriptedOptions(Settings):
    """The scripted test double: canned replies from the JSON file given as --model-path."""

    max_concurrency: int = option(16, "Requests answered at once.")

    @property
    def capacity(self) -> int:
        return self.max_concurrency
