"""The seam between serving and inference engines: one small async interface (`Backend`)
that every engine implements (transformers now; llama.cpp, vLLM and remote providers
later), plus a scripted test double. Workers and the CLI only ever talk to `Backend`."""

from palestra.backends.base import Backend, BackendHealth
from palestra.backends.registry import create_backend

__all__ = ["Backend", "BackendHealth", "create_backend"]
