"""Architecture adapters and model loading.

:mod:`~lensprobe.engine.adapters.registry`: where the lens' pieces live in each architecture family
(:class:`ArchitectureAdapter`, :func:`register_adapter`, :func:`get_adapter`, :class:`BoundAdapter`).
:mod:`~lensprobe.engine.adapters.loading`: :func:`load_model` (safetensors only unless asked,
eval mode) and :func:`verify_lens` (the lens on the last block reproduces the model's logits).
Everything is importable from ``lensprobe.engine.adapters``.
"""
from lensprobe.engine.adapters.loading import (CheckpointLoadError, LensCheckError, LoadedModel, UnsafeCheckpointError,
                                               load_model, verify_lens)
from lensprobe.engine.adapters.registry import (AdapterError, ArchitectureAdapter, BoundAdapter,
                                                UnknownArchitectureError, block_output, get_adapter, register_adapter,
                                                registered_model_types)

__all__ = [
    "ArchitectureAdapter",
    "BoundAdapter",
    "LoadedModel",
    "AdapterError",
    "UnknownArchitectureError",
    "LensCheckError",
    "UnsafeCheckpointError",
    "CheckpointLoadError",
    "register_adapter",
    "get_adapter",
    "registered_model_types",
    "load_model",
    "verify_lens",
    "block_output",
]
