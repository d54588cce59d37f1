"""The model registry: which family a model belongs to, and so which template, backend and
display card it gets. Families come from plugins (the built-ins register the same way)."""

from palestra.models.inspect import ModelInfo, inspect_model
from palestra.models.registry import ModelRegistry
from palestra.models.spec import ModelCard, ModelSpec

__all__ = ["ModelCard", "ModelInfo", "ModelRegistry", "ModelSpec", "inspect_model"]
