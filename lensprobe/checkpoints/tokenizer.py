"""Tokenizer identity, and loading a tokenizer from a path.

:func:`tokenizer_hash` is the one definition of "the same tokenizer", for a series
(:class:`lensprobe.checkpoints.CheckpointSeries`) and for pretraining (token-store manifests,
``checkpoint.json``, resume checks): SHA-256 of the fast tokenizer's canonical JSON (what the
``tokenizers`` library serialises, keys sorted) and its bos/eos/pad/unk tokens. It identifies what
decides token ids, not how the files were written: the same tokenizer hashes equal whether saved
by ``pretrain`` or by HF ``save_pretrained``, in any formatting, with any paths or library versions
recorded in ``tokenizer_config.json``. Why this and not a hash of the files: docs/checkpoints.md,
"Tokenizer identity". The value is persisted (``runs/*/tokens/manifest.json``, ``checkpoint.json``):
never change how it is computed.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from .errors import CheckpointError

__all__ = ["TOKENIZER_VOCAB_FILES", "TOKENIZER_AUX_FILES", "has_tokenizer", "tokenizer_hash",
           "load_tokenizer_from"]

#: files that carry a vocabulary: a directory "has a tokenizer" when one of them exists
TOKENIZER_VOCAB_FILES: tuple[str, ...] = (
    "tokenizer.json", "tokenizer.model", "vocab.json", "merges.txt", "vocab.txt", "spiece.model",
    "sentencepiece.bpe.model",
)
#: configuration files read when a tokenizer is loaded (special tokens, added tokens)
TOKENIZER_AUX_FILES: tuple[str, ...] = ("special_tokens_map.json", "added_tokens.json", "tokenizer_config.json")
_SPECIAL = ("bos_token", "eos_token", "pad_token", "unk_token")

# identity by the bytes of a directory's tokenizer files: a series whose checkpoints all carry the
# same files loads the tokenizer once, not once per checkpoint
_BY_FILES: dict[str, str] = {}


def has_tokenizer(path: str | os.PathLike) -> bool:
    """Whether directory ``path`` holds a tokenizer (a vocabulary-carrying file)."""
    return any((Path(path) / f).is_file() for f in TOKENIZER_VOCAB_FILES)


def load_tokenizer_from(path: str | os.PathLike) -> Any:
    """A tokenizer from a directory (``AutoTokenizer``) or a ``tokenizer.json`` file
    (``PreTrainedTokenizerFast``); :class:`CheckpointError` naming the path when it cannot be loaded."""
    p = Path(path).expanduser()
    if not p.exists():
        raise CheckpointError(f"tokenizer path {str(path)!r} does not exist")
    try:
        if p.is_file():
            from transformers import PreTrainedTokenizerFast

            return PreTrainedTokenizerFast(tokenizer_file=str(p))
        from transformers import AutoTokenizer

        return AutoTokenizer.from_pretrained(str(p))
    except Exception as exc:  # transformers raises OSError, ValueError, KeyError, ...
        raise CheckpointError(f"{p}: cannot load the tokenizer ({type(exc).__name__}: {exc})") from exc


def _object_hash(tok: Any) -> str:
    backend = getattr(tok, "backend_tokenizer", None)
    if backend is None:
        raise TypeError(f"tokenizer_hash: expected a fast tokenizer or a directory, got {type(tok).__name__}")
    payload = {"tokenizer": json.loads(backend.to_str()),
               "special": {k: getattr(tok, k, None) for k in _SPECIAL}}
    return hashlib.sha256(json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def _files_digest(path: Path) -> str:
    h = hashlib.blake2b(digest_size=16)
    # without tokenizer.json, AutoTokenizer also reads config.json (the model type picks the class)
    extra = () if (path / "tokenizer.json").is_file() else ("config.json",)
    for name in TOKENIZER_VOCAB_FILES + TOKENIZER_AUX_FILES + extra:
        f = path / name
        if f.is_file():
            h.update(name.encode() + b"\0" + hashlib.blake2b(f.read_bytes(), digest_size=16).digest())
    return h.hexdigest()


def _identify_directory(path: Path) -> str:
    if (path / "tokenizer.json").is_file():
        try:
            from transformers import PreTrainedTokenizerFast

            tok = PreTrainedTokenizerFast.from_pretrained(str(path))
        except Exception as exc:  # transformers raises OSError, ValueError, KeyError, ...
            raise CheckpointError(f"{path}: cannot load the tokenizer to identify it "
                                  f"({type(exc).__name__}: {exc})") from exc
        return _object_hash(tok)
    try:  # slow files only (vocab.json + merges.txt, tokenizer.model, ...): converted when possible
        from transformers import AutoTokenizer

        tok = AutoTokenizer.from_pretrained(str(path), use_fast=True)
        return _object_hash(tok)
    except Exception:  # no converter (e.g. sentencepiece missing) or a slow-only class
        return "files:" + _files_digest(path)


def tokenizer_hash(tokenizer_or_path: Any) -> str:
    """Identity of a tokenizer (64 hex characters): SHA-256 of the canonical tokenizer JSON and its
    special tokens; the same for a fast tokenizer object and the directory it was saved to.

    A directory with ``tokenizer.json`` is loaded as ``PreTrainedTokenizerFast`` (a file that does
    not load raises :class:`CheckpointError` naming the directory). A directory with only slow
    files (``vocab.json`` + ``merges.txt``, ``tokenizer.model``, ...) is converted to a fast
    tokenizer through ``AutoTokenizer``; when no conversion is possible here it is identified by
    the bytes of its tokenizer files instead (``"files:"`` + 32 hex characters, never equal to a
    loaded tokenizer's identity). ``TypeError`` for an object that is not a fast tokenizer.
    """
    if not isinstance(tokenizer_or_path, (str, os.PathLike)):
        return _object_hash(tokenizer_or_path)
    path = Path(tokenizer_or_path)
    if not has_tokenizer(path):
        raise CheckpointError(f"{path}: no tokenizer files ({', '.join(TOKENIZER_VOCAB_FILES)})")
    key = _files_digest(path)
    if key not in _BY_FILES:
        if len(_BY_FILES) >= 256:
            _BY_FILES.clear()
        _BY_FILES[key] = _identify_directory(path)
    return _BY_FILES[key]
