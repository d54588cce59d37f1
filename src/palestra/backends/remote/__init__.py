"""Backends for models hosted by API providers: `remote_backend(endpoint)` builds the one
of the endpoint's provider type (`providers.py` lists them; plugins add more)."""

from __future__ import annotations

from palestra.backends.remote.base import RemoteBackend
from palestra.backends.remote.endpoints import RemoteEndpoint, Secret, load_endpoint_file
from palestra.backends.remote.providers import ProviderType, remote_backend

__all__ = [
    "ProviderType",
    "RemoteBackend",
    "RemoteEndpoint",
    "Secret",
    "load_endpoint_file",
    "remote_backend",
]
