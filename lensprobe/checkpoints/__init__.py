"""Checkpoint series: find, order, hash and load the checkpoints of one training run.

A :class:`CheckpointSeries` is an ordered list of :class:`CheckpointInfo` (one per HF checkpoint
directory) built from

* a run directory (``CheckpointSeries(run_dir)``) holding ``checkpoint-N`` / ``step-N`` /
  ``stepN`` / ``stepN-tokens4B`` / ``step-000100-2BT`` sub-directories, or being a model itself;
* an explicit list of paths (:meth:`CheckpointSeries.from_paths`);
* Hub revisions (:meth:`CheckpointSeries.from_hub`, e.g. Pythia's ``step1000`` branches).

Per checkpoint it reads the run's own metadata (``checkpoint.json`` written by ``pretrain``,
HF Trainer's ``trainer_state.json``), hashes the weights (content of the safetensors tensors,
independent of sharding and file metadata), identifies the tokenizer, joins the run's loss logs
(``loss.jsonl``, ``val.jsonl``) and reports broken checkpoints instead of failing.
:meth:`CheckpointSeries.tokenizer` is the one place a series' tokenizer is resolved.

:meth:`CheckpointSeries.iter_models` keeps ONE model resident: the architecture is built once and
every later checkpoint's tensors are copied into it in place (tied embeddings stay tied), with the
next checkpoint read in a background thread while the caller works on the current one.

One module per concept: :mod:`.errors`, :mod:`.names` (checkpoint names), :mod:`.hashing` (weight
identity), :mod:`.tokenizer` (tokenizer identity and loading), :mod:`.logs` (loss logs),
:mod:`.info` (one checkpoint), :mod:`.loading` (in-place state-dict loading), :mod:`.series`.
The names below load lazily, so ``lensprobe.checkpoints.tokenizer`` (used by ``pretrain``) does
not import torch.
"""
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__all__ = [
    "CheckpointSeries",
    "CheckpointInfo",
    "ParsedName",
    "CheckpointWarning",
    "CheckpointError",
    "TokenizerMismatchError",
    "ArchitectureMismatchError",
    "StateDictMismatchError",
    "parse_checkpoint_name",
    "parse_token_count",
    "weight_hash",
    "tokenizer_hash",
    "has_tokenizer",
    "load_tokenizer_from",
    "read_safetensors_header",
    "load_loss_log",
    "load_val_log",
    "load_state_dict_in_place",
]

_HOME = {
    "CheckpointSeries": ".series", "CheckpointInfo": ".info", "ParsedName": ".names",
    "CheckpointWarning": ".errors", "CheckpointError": ".errors", "TokenizerMismatchError": ".errors",
    "ArchitectureMismatchError": ".errors", "StateDictMismatchError": ".errors",
    "parse_checkpoint_name": ".names", "parse_token_count": "lensprobe.token_counts",
    "weight_hash": ".hashing", "read_safetensors_header": ".hashing",
    "tokenizer_hash": ".tokenizer", "has_tokenizer": ".tokenizer", "load_tokenizer_from": ".tokenizer",
    "load_loss_log": ".logs", "load_val_log": ".logs", "load_state_dict_in_place": ".loading",
}

if TYPE_CHECKING:  # pragma: no cover
    from lensprobe.token_counts import parse_token_count

    from .errors import (ArchitectureMismatchError, CheckpointError, CheckpointWarning, StateDictMismatchError,
                         TokenizerMismatchError)
    from .hashing import read_safetensors_header, weight_hash
    from .info import CheckpointInfo
    from .loading import load_state_dict_in_place
    from .logs import load_loss_log, load_val_log
    from .names import ParsedName, parse_checkpoint_name
    from .series import CheckpointSeries
    from .tokenizer import has_tokenizer, load_tokenizer_from, tokenizer_hash


def __getattr__(name: str) -> Any:
    home = _HOME.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(home, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
