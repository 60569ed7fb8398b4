"""Tokenize a corpus once per language into flat token files, with a manifest.

Layout of ``out_dir``::

    <lang>.bin        training tokens (uint16 when the vocabulary fits, else uint32), documents
                      separated by the eos token (each document is followed by one eos)
    <lang>.val.bin    held-out validation documents (disjoint from training documents)
    manifest.json     tokens, documents, bytes, bytes/token, tokenizer hash, sources, licences,
                      filter report, per language

The validation documents are taken first from each language's stream, the training documents
after them. Training takes whole documents until the requested number of tokens is reached (or the
corpus is exhausted). Re-running with the same arguments, corpus and tokenizer hash reuses the
files of every language that is already done (an interrupted run resumes by language); every file
and the manifest are written atomically. One process writes a store at a time (``.tokenize.lock``),
and it removes the hidden temporaries a killed one left (docs/pretrain.md, "Temporaries after a kill").
"""
from __future__ import annotations

import contextlib
import os
import re
import tempfile
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import pandas as pd

from lensprobe.checkpoints.tokenizer import tokenizer_hash
from lensprobe.files import atomic_write_json, new_file_mode, owned_directory
from lensprobe.languages import check_language
from lensprobe.token_counts import parse_token_count

from .filters import DocumentFilter, FilterConfig

FORMAT = "lensprobe-tokens/1"
MANIFEST = "manifest.json"
SPLITS = {"train": "train", "val": "validation", "validation": "validation"}


@dataclass
class SplitStats:
    file: str
    tokens: int = 0
    documents: int = 0
    bytes: int = 0

    @property
    def bytes_per_token(self) -> float:
        return self.bytes / self.tokens if self.tokens else float("nan")

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["bytes_per_token"] = self.bytes_per_token if self.tokens else None
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "SplitStats":
        return cls(file=d["file"], tokens=int(d["tokens"]), documents=int(d["documents"]), bytes=int(d["bytes"]))


@dataclass
class LanguageTokens:
    language: str
    train: SplitStats
    validation: SplitStats
    sources: dict[str, int] = field(default_factory=dict)
    licences: dict[str, int] = field(default_factory=dict)
    filter: dict[str, Any] = field(default_factory=dict)
    requested_tokens: int | None = None
    exhausted: bool = False
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def bytes_per_token(self) -> float:
        return self.train.bytes_per_token

    def to_dict(self) -> dict[str, Any]:
        return {"language": self.language, "train": self.train.to_dict(),
                "validation": self.validation.to_dict(), "sources": dict(sorted(self.sources.items())),
                "licences": dict(sorted(self.licences.items())), "filter": self.filter,
                "requested_tokens": self.requested_tokens, "exhausted": self.exhausted,
                "bytes_per_token": self.bytes_per_token if self.train.tokens else None,
                "settings": self.settings}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "LanguageTokens":
        return cls(language=d["language"], train=SplitStats.from_dict(d["train"]),
                   validation=SplitStats.from_dict(d["validation"]), sources=dict(d.get("sources", {})),
                   licences=dict(d.get("licences", {})), filter=dict(d.get("filter", {})),
                   requested_tokens=d.get("requested_tokens"), exhausted=bool(d.get("exhausted", False)),
                   settings=dict(d.get("settings", {})))


@dataclass
class TokenManifest:
    tokenizer_hash: str
    dtype: str
    eos_token_id: int
    vocab_size: int
    languages: dict[str, LanguageTokens] = field(default_factory=dict)
    corpus: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None

    @property
    def bytes_per_token(self) -> dict[str, float]:
        return {lang: info.bytes_per_token for lang, info in self.languages.items()}

    def to_dict(self) -> dict[str, Any]:
        return {"format": FORMAT, "tokenizer_hash": self.tokenizer_hash, "dtype": self.dtype,
                "eos_token_id": self.eos_token_id, "vocab_size": self.vocab_size, "corpus": self.corpus,
                "languages": {k: v.to_dict() for k, v in sorted(self.languages.items())}}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], path: Path | None = None) -> "TokenManifest":
        if d.get("format") != FORMAT:
            raise ValueError(f"{path or 'manifest'}: field 'format' is {d.get('format')!r}, expected {FORMAT!r}")
        try:
            return cls(tokenizer_hash=d["tokenizer_hash"], dtype=d["dtype"], eos_token_id=int(d["eos_token_id"]),
                       vocab_size=int(d["vocab_size"]), corpus=dict(d.get("corpus", {})),
                       languages={k: LanguageTokens.from_dict(v) for k, v in d["languages"].items()}, path=path)
        except KeyError as exc:
            raise ValueError(f"{path or 'manifest'}: missing field {exc.args[0]!r}") from exc

    @classmethod
    def load(cls, path: str | os.PathLike) -> "TokenManifest":
        import json

        path = Path(path)
        file = path / MANIFEST if path.is_dir() else path
        if not file.is_file():
            raise FileNotFoundError(f"{file}: no token manifest (run tokenize_corpus first)")
        try:
            data = json.loads(file.read_text())
        except json.JSONDecodeError as exc:
            raise ValueError(f"{file}: not valid JSON ({exc})") from exc
        return cls.from_dict(data, file)

    def to_dataframe(self) -> pd.DataFrame:
        rows = []
        for lang, info in sorted(self.languages.items()):
            for split, stats in (("train", info.train), ("validation", info.validation)):
                rows.append({"language": lang, "split": split, "tokens": stats.tokens,
                             "documents": stats.documents, "bytes": stats.bytes,
                             "bytes_per_token": stats.bytes_per_token, "file": stats.file})
        return pd.DataFrame(rows, columns=["language", "split", "tokens", "documents", "bytes",
                                           "bytes_per_token", "file"])


def token_dtype(vocab_size: int) -> np.dtype:
    """``uint16`` when every id fits, else ``uint32``."""
    return np.dtype(np.uint16) if vocab_size <= 2 ** 16 else np.dtype(np.uint32)


def _source_group(source: str) -> str:
    if source.startswith("embedded:"):
        parts = source.split(":")
        return ":".join(parts[:2]) + (":pair" if ":pair:" in source else "")
    if "#" in source:
        return source.split("#", 1)[0]
    return source.split("/", 1)[0]


class _SplitWriter:
    """Appends token arrays to a hidden temporary file; ``commit`` renames it into place."""

    def __init__(self, out_dir: Path, name: str, dtype: np.dtype):
        self.final = out_dir / name
        fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=out_dir)
        os.fchmod(fd, new_file_mode())  # like any file the user writes, not mkstemp's 0600
        self.tmp = Path(tmp)
        self.fh = os.fdopen(fd, "wb")
        self.dtype = dtype
        self.stats = SplitStats(file=name)

    def add(self, ids: list[int], eos: int, nbytes: int) -> None:
        arr = np.empty(len(ids) + 1, dtype=self.dtype)
        arr[:-1] = ids
        arr[-1] = eos
        self.fh.write(arr.tobytes())
        self.stats.tokens += len(arr)
        self.stats.documents += 1
        self.stats.bytes += nbytes

    def commit(self) -> SplitStats:
        self.fh.flush()
        os.fsync(self.fh.fileno())
        self.fh.close()
        os.replace(self.tmp, self.final)
        return self.stats

    def abort(self) -> None:
        with contextlib.suppress(Exception):
            self.fh.close()
        with contextlib.suppress(FileNotFoundError):
            self.tmp.unlink()


def _files_intact(out_dir: Path, info: LanguageTokens, itemsize: int) -> bool:
    for stats in (info.train, info.validation):
        f = out_dir / stats.file
        if not f.is_file() or f.stat().st_size != stats.tokens * itemsize:
            return False
    return True


def tokenize_corpus(corpus: Any, tokenizer: Any, out_dir: str | os.PathLike, *,
                    tokens_per_language: Mapping[str, int | str | None],
                    validation_tokens_per_language: int = 0, filters: Any = None,
                    batch_documents: int = 64) -> TokenManifest:
    """Tokenize ``corpus`` into ``out_dir`` (see the module docstring); returns the manifest.

    ``tokens_per_language``: training tokens per language (ints or strings like ``"100M"``;
    ``None`` takes the whole of a finite corpus). ``filters``: ``None`` (none), ``True`` /
    ``"starcoder"`` (defaults of :class:`pretrain.filters.FilterConfig`) or a mapping of its fields.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    # one writer per store; a killed one's temporaries (a language file half written) are removed
    with owned_directory(out, [r"[a-z0-9_+#-]+(?:\.val)?\.bin", re.escape(MANIFEST)], what="tokenize"):
        return _tokenize_corpus(corpus, tokenizer, out, tokens_per_language=tokens_per_language,
                                validation_tokens_per_language=validation_tokens_per_language, filters=filters,
                                batch_documents=batch_documents)


def _tokenize_corpus(corpus: Any, tokenizer: Any, out: Path, *, tokens_per_language: Mapping[str, int | str | None],
                     validation_tokens_per_language: int, filters: Any, batch_documents: int) -> TokenManifest:
    if not isinstance(tokens_per_language, Mapping) or not tokens_per_language:
        raise ValueError("tokenize_corpus: 'tokens_per_language' must be a non-empty mapping language -> tokens")
    if isinstance(validation_tokens_per_language, bool) or not isinstance(validation_tokens_per_language, int) \
            or validation_tokens_per_language < 0:
        raise ValueError(f"tokenize_corpus: 'validation_tokens_per_language' must be a non-negative int, "
                         f"got {validation_tokens_per_language!r}")
    filter_config = FilterConfig.from_spec(filters)
    unlimited = bool(getattr(corpus, "unlimited", False))
    corpus_languages = list(corpus.languages)
    targets: dict[str, int | None] = {}
    for lang, value in tokens_per_language.items():
        check_language(lang)
        if lang not in corpus_languages:
            raise ValueError(f"tokens_per_language.{lang}: the corpus has no {lang} documents "
                             f"(it has {', '.join(corpus_languages) or 'none'})")
        if value is None:
            if unlimited:
                raise ValueError(f"tokens_per_language.{lang}: the corpus is unlimited; give a number of tokens")
            targets[lang] = None
        else:
            try:
                targets[lang] = parse_token_count(value)
            except ValueError as exc:
                raise ValueError(f"tokens_per_language.{lang}: {exc}") from exc

    thash = tokenizer_hash(tokenizer)
    vocab_size = len(tokenizer)
    dtype = token_dtype(vocab_size)
    eos = tokenizer.eos_token_id
    if eos is None:
        raise ValueError("tokenize_corpus: the tokenizer has no eos token")
    fp = getattr(corpus, "fingerprint", None)
    corpus_fp = fp() if callable(fp) else {"kind": type(corpus).__name__}

    manifest = TokenManifest(tokenizer_hash=thash, dtype=dtype.name, eos_token_id=int(eos),
                             vocab_size=vocab_size, corpus=corpus_fp, path=out / MANIFEST)
    with contextlib.suppress(FileNotFoundError, ValueError):
        old = TokenManifest.load(out)
        if old.tokenizer_hash == thash and old.dtype == dtype.name:
            manifest.languages = {k: v for k, v in old.languages.items() if _files_intact(out, v, dtype.itemsize)}

    backend = tokenizer.backend_tokenizer
    for lang, target in targets.items():
        settings = {"tokens": target, "validation_tokens": validation_tokens_per_language,
                    "filters": filter_config.to_dict() if filter_config else None, "corpus": corpus_fp,
                    "tokenizer_hash": thash}
        settings = _jsonable(settings)
        previous = manifest.languages.get(lang)
        if previous is not None and previous.settings == settings:
            continue  # already done with the same arguments: reuse
        manifest.languages.pop(lang, None)
        info = _tokenize_language(corpus, backend, out, lang, target, validation_tokens_per_language,
                                  filter_config, dtype, int(eos), batch_documents)
        info.settings = settings
        manifest.languages[lang] = info
        atomic_write_json(out / MANIFEST, manifest.to_dict())
    atomic_write_json(out / MANIFEST, manifest.to_dict())
    return manifest


def _jsonable(obj: Any) -> Any:
    import json

    return json.loads(json.dumps(obj, sort_keys=True, default=str))


def _tokenize_language(corpus, backend, out: Path, lang: str, target: int | None, val_target: int,
                       filter_config: FilterConfig | None, dtype: np.dtype, eos: int,
                       batch_documents: int) -> LanguageTokens:
    doc_filter = DocumentFilter(filter_config) if filter_config is not None else None
    val = _SplitWriter(out, f"{lang}.val.bin", dtype)
    train = _SplitWriter(out, f"{lang}.bin", dtype)
    sources: Counter = Counter()
    licences: Counter = Counter()
    exhausted = True
    try:
        docs = iter(corpus.documents(lang))
        done = False
        while not done:
            batch = []
            for doc in docs:
                if doc_filter is not None and not doc_filter.keep(doc.text, lang):
                    continue
                batch.append(doc)
                if len(batch) >= batch_documents:
                    break
            if not batch:
                break
            encodings = backend.encode_batch([d.text for d in batch], add_special_tokens=False)
            for doc, enc in zip(batch, encodings):
                nbytes = len(doc.text.encode("utf-8"))
                if val.stats.tokens < val_target:
                    val.add(enc.ids, eos, nbytes)
                elif target is None or train.stats.tokens < target:
                    train.add(enc.ids, eos, nbytes)
                    sources[_source_group(doc.source)] += 1
                    licences[doc.licence or "unknown"] += 1
                if target is not None and train.stats.tokens >= target and val.stats.tokens >= val_target:
                    done, exhausted = True, False
                    break
        if train.stats.tokens == 0:
            raise ValueError(f"tokenize_corpus: no {lang} training tokens (corpus empty after "
                             f"{val.stats.documents} validation documents and filtering)")
        val_stats, train_stats = val.commit(), train.commit()
    except BaseException:
        val.abort()
        train.abort()
        raise
    report = doc_filter.report.to_dict(lang) if doc_filter is not None else {}
    return LanguageTokens(language=lang, train=train_stats, validation=val_stats, sources=dict(sources),
                          licences=dict(licences), filter=report, requested_tokens=target,
                          exhausted=exhausted and target is not None)


class TokenStore:
    """Read-only view of a tokenized directory: memory-mapped token arrays per language."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.manifest = TokenManifest.load(self.path)
        self._maps: dict[tuple[str, str], np.ndarray] = {}

    @property
    def languages(self) -> list[str]:
        return list(self.manifest.languages)

    @property
    def dtype(self) -> np.dtype:
        return np.dtype(self.manifest.dtype)

    @property
    def tokenizer_hash(self) -> str:
        return self.manifest.tokenizer_hash

    @property
    def eos_token_id(self) -> int:
        return self.manifest.eos_token_id

    def tokens(self, lang: str, split: str = "train") -> np.ndarray:
        """The flat token array of ``lang``'s ``split`` ("train" or "val"/"validation")."""
        if split not in SPLITS:
            raise ValueError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")
        if lang not in self.manifest.languages:
            raise KeyError(f"token store {self.path}: no language {lang!r} (it has {', '.join(self.languages)})")
        key = (lang, SPLITS[split])
        if key not in self._maps:
            info = self.manifest.languages[lang]
            stats = info.train if key[1] == "train" else info.validation
            file = self.path / stats.file
            if not file.is_file():
                raise FileNotFoundError(f"token store {self.path}: missing {stats.file}")
            expected = stats.tokens * self.dtype.itemsize
            if file.stat().st_size != expected:
                raise ValueError(f"token store {self.path}: {stats.file} has {file.stat().st_size} bytes, "
                                 f"the manifest says {stats.tokens} tokens ({expected} bytes)")
            if stats.tokens == 0:
                self._maps[key] = np.zeros(0, dtype=self.dtype)
            else:
                self._maps[key] = np.memmap(file, dtype=self.dtype, mode="r", shape=(stats.tokens,))
        return self._maps[key]

    def documents(self, lang: str, split: str = "train") -> list[np.ndarray]:
        """The token arrays of the documents (split at the eos tokens, eos excluded)."""
        arr = np.asarray(self.tokens(lang, split))
        ends = np.flatnonzero(arr == self.eos_token_id)
        starts = np.concatenate([[0], ends[:-1] + 1]) if len(ends) else np.zeros(0, dtype=int)
        return [arr[s:e] for s, e in zip(starts, ends)]


__all__ = ["tokenize_corpus", "TokenStore", "TokenManifest", "LanguageTokens", "SplitStats", "token_dtype"]
