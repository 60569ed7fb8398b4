"""Token inputs for LAPE, per language, under a token budget.

Sources (mix freely, one per language):

* ``pretrain`` token files (``TokenStore(path).tokens(lang, split)``): the token stream is cut
  into ``seq_len`` blocks, like the original ``activation.py`` (documents stay separated by EOS);
* a directory of source files (recursively, by the language's file extensions) or a JSONL file of
  records with a ``text`` / ``content`` / ``code`` field (an optional ``language`` field filters):
  documents are tokenized without special tokens, joined with EOS and cut into ``seq_len`` blocks;
* a suite's rendered snippets (``load_suite(lang).render(seed)``, prompt + identifier + rest):
  one sequence per snippet (no packing), truncated to ``seq_len``.

Each language takes the first ``tokens_per_language`` tokens of its source (deterministic).
Budget guidance: ~1M tokens per language gives stable sets on billion-parameter models (the
authors used up to 100M); CPU-sized models (4 layers x 512 neurons) gave interpretable sets from
16k tokens per language. Check with :func:`lensprobe.lape.null.split_half_agreement`.
"""
from __future__ import annotations

from lensprobe.files import iter_jsonl

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

import numpy as np
import torch

from lensprobe.engine.protocol import Batch
from lensprobe.suites import load_suite
from pretrain.tokens import TokenStore

__all__ = ["LapeInputs", "LANGUAGE_EXTENSIONS", "InputError", "read_documents", "resolve_inputs"]

#: file extensions read for a language from a directory source
LANGUAGE_EXTENSIONS: dict[str, tuple[str, ...]] = {
    "python": (".py",),
    "php": (".php",),
    "csharp": (".cs",),
    "go": (".go",),
    "cpp": (".cpp", ".cc", ".cxx", ".hpp", ".hh", ".h"),
}
_TEXT_FIELDS = ("text", "content", "code")


class InputError(ValueError):
    """Bad LAPE input (names the file, field or language)."""


def _encode(tokenizer: Any, text: str) -> list[int]:
    try:
        enc = tokenizer.encode(text, add_special_tokens=False)
    except TypeError:  # tokenizers.Tokenizer
        enc = tokenizer.encode(text)
    return [int(i) for i in getattr(enc, "ids", enc)]


def _eos_id(tokenizer: Any) -> int | None:
    eos = getattr(tokenizer, "eos_token_id", None)
    return None if eos is None else int(eos)


def _chunk(stream: np.ndarray, seq_len: int) -> list[np.ndarray]:
    """Views of ``stream`` (a memmap stays on disk until a batch reads it)."""
    return [stream[i:i + seq_len] for i in range(0, len(stream), seq_len)]


def _check_budget(tokens_per_language: int | None) -> int | None:
    if tokens_per_language is None:
        return None
    if int(tokens_per_language) < 1:
        raise InputError(f"tokens_per_language must be >= 1, got {tokens_per_language}")
    return int(tokens_per_language)


@dataclass(frozen=True)
class LapeInputs:
    """Token id sequences per language (each at most ``seq_len`` long), in a fixed order."""

    sequences: Mapping[str, tuple[np.ndarray, ...]]
    sources: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.sequences:
            raise InputError("LAPE inputs need at least one language")
        for lang, seqs in self.sequences.items():
            if not seqs or sum(len(s) for s in seqs) == 0:
                raise InputError(f"language {lang!r} has no tokens (source: {self.sources.get(lang, '?')})")

    # -- construction ---------------------------------------------------------------------------
    @classmethod
    def from_token_arrays(cls, streams: Mapping[str, Sequence[int] | np.ndarray], *, seq_len: int = 256,
                          tokens_per_language: int | None = None, sources: Mapping[str, str] | None = None
                          ) -> "LapeInputs":
        """Cut each language's token stream (first ``tokens_per_language`` tokens) into ``seq_len`` blocks."""
        budget = _check_budget(tokens_per_language)
        if int(seq_len) < 1:
            raise InputError(f"seq_len must be >= 1, got {seq_len}")
        out = {}
        for lang, stream in streams.items():
            arr = stream[:budget] if budget is not None else stream
            arr = arr if isinstance(arr, np.ndarray) else np.asarray(arr, dtype=np.int64)
            if arr.ndim != 1 or (arr.size and not np.issubdtype(arr.dtype, np.integer)):
                raise InputError(f"language {lang!r}: token ids must be a 1-D integer array, got {arr.dtype} "
                                 f"of shape {arr.shape}")
            out[lang] = tuple(_chunk(arr, int(seq_len)))
        return cls(out, dict(sources or {lang: "tokens" for lang in streams}))

    @classmethod
    def from_token_store(cls, path: str | os.PathLike, languages: Sequence[str], *, split: str = "val",
                         seq_len: int = 256, tokens_per_language: int | None = None) -> "LapeInputs":
        """Read ``pretrain`` token files (``TokenStore(path).tokens(lang, split)``)."""
        try:
            store = TokenStore(path)
        except (FileNotFoundError, ValueError) as exc:
            raise InputError(f"token store {path}: {exc}") from exc
        streams = {}
        for lang in languages:
            try:
                streams[lang] = store.tokens(lang, split=split)
            except (KeyError, FileNotFoundError, ValueError) as exc:
                raise InputError(f"token store {path}: no {split!r} tokens for language {lang!r} "
                                 f"({exc.args[0] if exc.args else exc})") from exc
        return cls.from_token_arrays(streams, seq_len=seq_len, tokens_per_language=tokens_per_language,
                                     sources={lang: f"tokens:{path}:{split}" for lang in languages})

    @classmethod
    def from_texts(cls, texts: Mapping[str, Sequence[str]], tokenizer: Any, *, seq_len: int = 256,
                   tokens_per_language: int | None = None, pack: bool = True,
                   sources: Mapping[str, str] | None = None) -> "LapeInputs":
        """Tokenize documents (no special tokens). ``pack``: join with EOS and cut into blocks;
        otherwise one sequence per document, truncated to ``seq_len``."""
        budget = _check_budget(tokens_per_language)
        eos = _eos_id(tokenizer)
        out = {}
        for lang, docs in texts.items():
            if pack:
                stream: list[int] = []
                for doc in docs:
                    if stream and eos is not None:
                        stream.append(eos)
                    stream.extend(_encode(tokenizer, doc))
                    if budget is not None and len(stream) >= budget:
                        break
                out[lang] = tuple(_chunk(np.asarray(stream[:budget] if budget else stream, np.int64), seq_len))
            else:
                seqs, total = [], 0
                for doc in docs:
                    ids = _encode(tokenizer, doc)[:seq_len]
                    if budget is not None:
                        ids = ids[:budget - total]
                    if ids:
                        seqs.append(np.asarray(ids, dtype=np.int64))
                        total += len(ids)
                    if budget is not None and total >= budget:
                        break
                out[lang] = tuple(seqs)
        return cls(out, dict(sources or {lang: "texts" for lang in texts}))

    @classmethod
    def from_suites(cls, languages: Sequence[str], tokenizer: Any, *, seed: int = 0, seq_len: int = 256,
                    tokens_per_language: int | None = None) -> "LapeInputs":
        """Each language's suite snippets (``load_suite(lang).render(seed=seed)``), one sequence each."""
        texts = {}
        for lang in languages:
            try:
                suite = load_suite(lang)
            except (KeyError, FileNotFoundError, ValueError) as exc:
                raise InputError(f"no identifier suite for language {lang!r}: {exc}") from exc
            texts[lang] = [item.completion for item in suite.render(seed=seed)]
        return cls.from_texts(texts, tokenizer, seq_len=seq_len, tokens_per_language=tokens_per_language,
                              pack=False, sources={lang: f"suite:{lang}:seed={seed}" for lang in languages})

    @classmethod
    def from_files(cls, paths: Mapping[str, str | os.PathLike], tokenizer: Any, *, seq_len: int = 256,
                   tokens_per_language: int | None = None) -> "LapeInputs":
        """Per language a directory of source files or a JSONL file of records (see module docstring)."""
        texts = {lang: list(read_documents(path, lang)) for lang, path in paths.items()}
        return cls.from_texts(texts, tokenizer, seq_len=seq_len, tokens_per_language=tokens_per_language,
                              pack=True, sources={lang: str(p) for lang, p in paths.items()})

    # -- views ----------------------------------------------------------------------------------
    @property
    def languages(self) -> tuple[str, ...]:
        return tuple(self.sequences)

    def n_tokens(self) -> dict[str, int]:
        return {lang: int(sum(len(s) for s in seqs)) for lang, seqs in self.sequences.items()}

    def select(self, languages: Sequence[str]) -> "LapeInputs":
        """The inputs of ``languages`` only, in that order."""
        missing = [lang for lang in languages if lang not in self.sequences]
        if missing:
            raise InputError(f"no inputs for language(s) {missing}; have {list(self.sequences)}")
        return LapeInputs({lang: self.sequences[lang] for lang in languages},
                          {lang: self.sources.get(lang, "?") for lang in languages})

    def truncate(self, tokens_per_language: int) -> "LapeInputs":
        """The first ``tokens_per_language`` tokens of every language (sequences cut where the budget ends)."""
        budget = _check_budget(tokens_per_language)
        out = {}
        for lang, seqs in self.sequences.items():
            kept, total = [], 0
            for s in seqs:
                if total >= budget:
                    break
                kept.append(s[:budget - total])
                total += len(kept[-1])
            out[lang] = tuple(kept)
        return LapeInputs(out, dict(self.sources))

    def digest(self) -> str:
        """Content hash of the token ids (part of the probe's input key and resume key)."""
        cached = self.__dict__.get("_digest")
        if cached is not None:
            return cached
        h = hashlib.sha256()
        for lang, seqs in self.sequences.items():
            h.update(lang.encode() + b"\0")
            for s in seqs:
                h.update(np.asarray(s, dtype=np.int64).tobytes() + b"|")
        self.__dict__["_digest"] = h.hexdigest()[:16]  # immutable inputs: compute once
        return self.__dict__["_digest"]

    def group_layout(self, n_groups: int) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """Split each language's sequences into ``min(n_groups, #sequences)`` contiguous groups.

        Returns ``group_language`` (language index of each global group) and, per language, the
        global group id of every sequence.
        """
        if int(n_groups) < 1:
            raise InputError(f"n_groups must be >= 1, got {n_groups}")
        group_language: list[int] = []
        seq_groups: dict[str, np.ndarray] = {}
        for li, (lang, seqs) in enumerate(self.sequences.items()):
            g = min(int(n_groups), len(seqs))
            local = (np.arange(len(seqs)) * g) // len(seqs)
            seq_groups[lang] = len(group_language) + local
            group_language.extend([li] * g)
        return np.asarray(group_language, dtype=np.int64), seq_groups

    def batches(self, *, batch_size: int = 8, n_groups: int = 16, padding_side: str = "right",
                pad_id: int = 0) -> Iterator[Batch]:
        """Padded batches (one language per batch); ``meta`` rows carry language, group and sequence index."""
        if int(batch_size) < 1:
            raise InputError(f"batch_size must be >= 1, got {batch_size}")
        if padding_side not in ("left", "right"):
            raise InputError(f"padding_side must be 'left' or 'right', got {padding_side!r}")
        _, seq_groups = self.group_layout(n_groups)
        for lang, seqs in self.sequences.items():
            for start in range(0, len(seqs), batch_size):
                chunk = seqs[start:start + batch_size]
                width = max(len(s) for s in chunk)
                ids = torch.full((len(chunk), width), int(pad_id), dtype=torch.long)
                mask = torch.zeros((len(chunk), width), dtype=torch.long)
                meta = []
                for row, s in enumerate(chunk):
                    n = len(s)
                    sl = slice(0, n) if padding_side == "right" else slice(width - n, width)
                    ids[row, sl] = torch.from_numpy(np.array(s, dtype=np.int64))
                    mask[row, sl] = 1
                    meta.append({"language": lang, "group": int(seq_groups[lang][start + row]),
                                 "index": start + row})
                yield Batch(ids, mask, meta)


def read_documents(path: str | os.PathLike, language: str) -> Iterator[str]:
    """Documents of ``language`` from a directory (by extension, sorted paths) or a JSONL file."""
    path = Path(path)
    if path.is_dir():
        exts = LANGUAGE_EXTENSIONS.get(language)
        if exts is None:
            raise InputError(f"{path}: no file extensions known for language {language!r}; "
                             f"known: {sorted(LANGUAGE_EXTENSIONS)} (or use a JSONL file)")
        files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in exts)
        if not files:
            raise InputError(f"{path}: no {language} files ({', '.join(exts)})")
        for f in files:
            yield f.read_text(encoding="utf-8", errors="replace")
        return
    if not path.is_file():
        raise InputError(f"{path}: no such file or directory")
    found = False
    for lineno, rec in iter_jsonl(path, error=InputError):
        if "language" in rec and rec["language"] != language:
            continue
        text = next((rec[k] for k in _TEXT_FIELDS if k in rec), None)
        if not isinstance(text, str):
            raise InputError(f"{path}:{lineno}: needs a string field {' / '.join(_TEXT_FIELDS)}")
        found = True
        yield text
    if not found:
        raise InputError(f"{path}: no records for language {language!r}")


def resolve_inputs(source: Any, *, languages: Sequence[str], tokenizer: Any = None, seq_len: int = 256,
                   tokens_per_language: int | None = None, split: str = "val", suite_seed: int = 0) -> LapeInputs:
    """Build :class:`LapeInputs` from any supported description.

    ``source`` is a :class:`LapeInputs`; a ``pretrain`` token-store directory (with a
    ``manifest.json``; all languages); a directory of source files or a JSONL file with a
    ``language`` field (all languages); or a mapping language -> ``"suite"`` / directory of source
    files / JSONL file / ``"tokens:<store dir>"``.
    """
    languages = list(languages)
    if not languages:
        raise InputError("no languages given")
    if isinstance(source, LapeInputs):
        out = source.select(languages)
        return out.truncate(tokens_per_language) if tokens_per_language is not None else out
    if isinstance(source, (str, os.PathLike)):
        text = str(source)
        if text.startswith("tokens:") or (Path(text) / "manifest.json").is_file():
            store = text[len("tokens:"):] if text.startswith("tokens:") else text
            return LapeInputs.from_token_store(store, languages, split=split, seq_len=seq_len,
                                               tokens_per_language=tokens_per_language)
        source = {lang: text for lang in languages}
    if not isinstance(source, Mapping):
        raise InputError(f"unsupported LAPE input source {source!r}")
    missing = [lang for lang in languages if lang not in source]
    if missing:
        raise InputError(f"no input source for language(s) {missing}")
    parts: dict[str, LapeInputs] = {}
    for lang in languages:
        spec = str(source[lang])
        if spec == "suite" or spec.startswith("suite:"):
            parts[lang] = LapeInputs.from_suites([lang], _need(tokenizer, lang, spec), seed=suite_seed,
                                                 seq_len=seq_len, tokens_per_language=tokens_per_language)
        elif spec.startswith("tokens:"):
            parts[lang] = LapeInputs.from_token_store(spec[len("tokens:"):], [lang], split=split, seq_len=seq_len,
                                                      tokens_per_language=tokens_per_language)
        else:
            parts[lang] = LapeInputs.from_files({lang: spec}, _need(tokenizer, lang, spec), seq_len=seq_len,
                                                tokens_per_language=tokens_per_language)
    return LapeInputs({lang: parts[lang].sequences[lang] for lang in languages},
                      {lang: parts[lang].sources[lang] for lang in languages})


def _need(tokenizer: Any, lang: str, spec: str) -> Any:
    if tokenizer is None:
        raise InputError(f"language {lang!r}: source {spec!r} is text and needs a tokenizer")
    return tokenizer
