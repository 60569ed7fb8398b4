"""The errors and the warning category of :mod:`lensprobe.checkpoints` (every message names the
checkpoint, file or series it is about)."""
from __future__ import annotations

__all__ = ["CheckpointWarning", "CheckpointError", "TokenizerMismatchError", "ArchitectureMismatchError",
           "StateDictMismatchError"]


class CheckpointWarning(UserWarning):
    """Something about a checkpoint series deserves attention (duplicates, broken, conflicts)."""


class CheckpointError(ValueError):
    """A checkpoint or series cannot be used as asked; the message names the checkpoint."""


class TokenizerMismatchError(CheckpointError):
    """The checkpoints of a series do not share one tokenizer."""


class ArchitectureMismatchError(CheckpointError):
    """A checkpoint's config differs in architecture from the resident model's."""


class StateDictMismatchError(CheckpointError):
    """A checkpoint's tensors do not fit the resident model (missing/unexpected keys, shapes)."""

