"""Corpora: where training documents come from.

``open_corpus(spec)`` returns a :class:`Corpus` whose ``documents(language)`` yields
:class:`Document` s of one language, in a deterministic order:

* ``"embedded"`` / ``{"kind": "embedded", "seed": 0, "parallel_pairs": 0.0}``: the built-in,
  unlimited generator of small programs (:mod:`pretrain.programs`, rendered by :mod:`pretrain.render`);
  the ``i``-th document of every language is the same program. With ``parallel_pairs=p`` a share ``p`` of the documents
  are a program in a partner language followed by its translation ("parallel pairing").
* ``{"kind": "files", "path": DIR}``: source files below ``DIR``, language by extension; licences
  from ``DIR/corpus.json`` (written by ``scripts/build_debian_corpus.sh``) when present.
* ``{"kind": "jsonl" | "parquet", "path": FILE_OR_DIR, "content_field": "content",
  "language_field": "lang"}``: The Stack's layout; without a language column the language comes
  from a path column's extension; ``licence_field`` names an optional licence column.
* ``{"kind": "hf_disk", "path": DIR}``: a ``datasets`` dataset saved with ``save_to_disk``
  (same fields as jsonl/parquet).
* ``{"kind": "babel", "stage": ..., ...}``: the synthetic Babel benchmark's concept corpora
  (:func:`lensprobe.babel.corpus.babel_corpus`), a kind that lives outside ``pretrain``: such kinds
  are named in :data:`CORPUS_PLUGINS` as ``"module:function"`` and imported on use.

Languages are the canonical names of :mod:`lensprobe.languages`.
"""
from __future__ import annotations

import importlib
import json
import os
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Mapping, Sequence

from lensprobe.files import iter_jsonl
from lensprobe.languages import EXTENSIONS, LANGUAGE_INFO, LANGUAGES, canonical_language_or_none, check_language, \
    language_of_path

from .programs import generate_program
from .render import render_program


@dataclass
class Document:
    text: str
    language: str
    source: str
    licence: str | None = None


class Corpus:
    """A source of documents per language. Subclasses implement :meth:`_documents`."""

    kind = "corpus"

    def __init__(self, languages: Sequence[str] | None = None):
        self._languages = tuple(check_language(x) for x in languages) if languages else None

    @property
    def languages(self) -> tuple[str, ...]:
        return self._languages if self._languages is not None else self.available_languages()

    def available_languages(self) -> tuple[str, ...]:
        return LANGUAGES

    @property
    def unlimited(self) -> bool:
        return False

    def documents(self, language: str) -> Iterator[Document]:
        language = check_language(language)
        if language not in self.languages:
            raise ValueError(f"corpus {self.describe()} has no language {language!r}; "
                             f"it has {', '.join(self.languages) or 'none'}")
        return self._documents(language)

    def _documents(self, language: str) -> Iterator[Document]:  # pragma: no cover - abstract
        raise NotImplementedError

    def fingerprint(self) -> dict[str, Any]:
        """A JSON description that identifies the corpus (manifests compare it for reuse)."""
        return {"kind": self.kind}

    def describe(self) -> str:
        return json.dumps(self.fingerprint(), sort_keys=True)


# ----------------------------------------------------------------------------------------------
class EmbeddedCorpus(Corpus):
    """The built-in generator: unlimited, deterministic, the same program in every language."""

    kind = "embedded"

    def __init__(self, *, seed: int = 0, parallel_pairs: float = 0.0,
                 languages: Sequence[str] | None = None, start: int = 0):
        super().__init__(languages)
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise ValueError(f"embedded corpus: 'seed' must be an int, got {seed!r}")
        if not isinstance(parallel_pairs, (int, float)) or not 0.0 <= float(parallel_pairs) <= 1.0:
            raise ValueError(f"embedded corpus: 'parallel_pairs' must be in [0, 1], got {parallel_pairs!r}")
        if isinstance(start, bool) or not isinstance(start, int) or start < 0:
            raise ValueError(f"embedded corpus: 'start' must be a non-negative int, got {start!r}")
        self.seed, self.parallel_pairs, self.start = seed, float(parallel_pairs), start

    @property
    def unlimited(self) -> bool:
        return True

    def fingerprint(self) -> dict[str, Any]:
        return {"kind": self.kind, "seed": self.seed, "parallel_pairs": self.parallel_pairs,
                "start": self.start}

    def partner(self, language: str, index: int) -> str | None:
        """The language a parallel pair of document ``index`` starts from: Python for the other
        languages, a seeded other language for Python; only languages of this corpus (so a
        Python-only corpus has no pairs and never shows another language)."""
        if language != "python" and "python" in self.languages:
            return "python"
        others = [x for x in self.languages if x != language]
        if not others:
            return None
        return others[random.Random(f"partner:{self.seed}:{index}").randrange(len(others))]

    def is_pair(self, index: int) -> bool:
        if self.parallel_pairs <= 0:
            return False
        return random.Random(f"pair:{self.seed}:{index}").random() < self.parallel_pairs

    def document(self, language: str, index: int) -> Document:
        program = generate_program(self.seed, index)
        text = render_program(program, language)
        source = f"embedded:{self.seed}:{index}"
        other = self.partner(language, index) if self.is_pair(index) else None
        if other is not None:
            o, lang = LANGUAGE_INFO[other], LANGUAGE_INFO[language]
            text = (f"{o.line_comment} {o.display} version\n{render_program(program, other)}\n"
                    f"{lang.line_comment} The same program in {lang.display}\n{text}")
            source += f":pair:{other}"
        return Document(text, language, source, "generated (lensprobe, MIT)")

    def _documents(self, language: str) -> Iterator[Document]:
        index = self.start
        while True:
            yield self.document(language, index)
            index += 1


# ----------------------------------------------------------------------------------------------
def _read_manifest_licences(root: Path) -> tuple[dict[str, str], str | None]:
    """``corpus.json`` beside a file corpus: {"licences": {subdir: licence}, "licence": default}."""
    path = root / "corpus.json"
    if not path.is_file():
        return {}, None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path}: not valid JSON ({exc})") from exc
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a JSON object")
    by_dir: dict[str, str] = {}
    for entry in data.get("sources", []):
        if isinstance(entry, dict) and "path" in entry:
            by_dir[str(entry["path"]).strip("/")] = str(entry.get("licence") or "unknown")
    for key, value in (data.get("licences") or {}).items():
        by_dir[str(key).strip("/")] = str(value)
    return by_dir, data.get("licence")


class FileCorpus(Corpus):
    """Source files below a directory; language by extension, sorted paths (deterministic)."""

    kind = "files"

    def __init__(self, path: str | os.PathLike, *, languages: Sequence[str] | None = None,
                 extensions: Mapping[str, str] | None = None, encoding: str = "utf-8"):
        super().__init__(languages)
        self.root = Path(path)
        if not self.root.is_dir():
            raise ValueError(f"files corpus: 'path' {self.root} is not a directory")
        self.extensions = {k.lower(): check_language(v) for k, v in (extensions or EXTENSIONS).items()}
        self.encoding = encoding
        self._licences, self._default_licence = _read_manifest_licences(self.root)
        self._index: dict[str, list[Path]] | None = None

    def fingerprint(self) -> dict[str, Any]:
        return {"kind": self.kind, "path": str(self.root.resolve())}

    def _files(self) -> dict[str, list[Path]]:
        if self._index is None:
            index: dict[str, list[Path]] = {}
            for dirpath, dirnames, filenames in os.walk(self.root):
                dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
                for name in sorted(filenames):
                    lang = self.extensions.get(os.path.splitext(name)[1].lower())
                    if lang is not None:
                        index.setdefault(lang, []).append(Path(dirpath) / name)
            self._index = index
        return self._index

    def available_languages(self) -> tuple[str, ...]:
        files = self._files()
        return tuple(x for x in LANGUAGES if files.get(x))

    def licence_for(self, rel: str) -> str | None:
        best, best_len = self._default_licence, -1
        for prefix, licence in self._licences.items():
            if (rel == prefix or rel.startswith(prefix + "/") or prefix == "") and len(prefix) > best_len:
                best, best_len = licence, len(prefix)
        return best

    def _documents(self, language: str) -> Iterator[Document]:
        for path in self._files().get(language, []):
            try:
                text = path.read_bytes().decode(self.encoding)
            except UnicodeDecodeError:
                continue  # binary or foreign-encoded file: not source text we can train on
            rel = path.relative_to(self.root).as_posix()
            yield Document(text, language, rel, self.licence_for(rel))


# ----------------------------------------------------------------------------------------------
class _RecordCorpus(Corpus):
    """Records with a content field and a language (or path) field."""

    def __init__(self, path, *, content_field: str = "content", language_field: str | None = None,
                 path_field: str | None = None, licence_field: str | None = None,
                 languages: Sequence[str] | None = None):
        super().__init__(languages)
        self.path = Path(path)
        if not self.path.exists():
            raise ValueError(f"{self.kind} corpus: 'path' {self.path} does not exist")
        self.content_field = content_field
        self.language_field = language_field
        self.path_field = path_field
        self.licence_field = licence_field
        self._available: tuple[str, ...] | None = None

    def fingerprint(self) -> dict[str, Any]:
        return {"kind": self.kind, "path": str(self.path.resolve()), "content_field": self.content_field,
                "language_field": self.language_field, "path_field": self.path_field}

    def _records(self) -> Iterator[tuple[str, Mapping[str, Any]]]:  # pragma: no cover - abstract
        raise NotImplementedError

    def _fields(self, columns: Iterable[str], where: str) -> tuple[str | None, str | None]:
        columns = list(columns)
        if self.content_field not in columns:
            raise ValueError(f"{where}: no content field {self.content_field!r} "
                             f"(fields: {', '.join(columns)}); set 'content_field'")
        lang = self.language_field
        if lang is not None and lang not in columns:
            raise ValueError(f"{where}: no language field {lang!r} (fields: {', '.join(columns)})")
        if lang is None:
            lang = next((c for c in ("lang", "language") if c in columns), None)
        path = self.path_field
        if path is not None and path not in columns:
            raise ValueError(f"{where}: no path field {path!r} (fields: {', '.join(columns)})")
        if lang is None and path is None:
            path = next((c for c in ("path", "max_stars_repo_path", "filename") if c in columns), None)
        if lang is None and path is None:
            raise ValueError(f"{where}: no language field ('lang'/'language') and no path field to "
                             f"take the extension from (fields: {', '.join(columns)}); set 'language_field'")
        return lang, path

    def _language_of(self, record: Mapping[str, Any], lang_field, path_field) -> str | None:
        if lang_field is not None:
            value = record.get(lang_field)
            return canonical_language_or_none(value) if value is not None else None
        value = record.get(path_field)
        return language_of_path(value) if value is not None else None

    def _licence_of(self, record: Mapping[str, Any]) -> str | None:
        field = self.licence_field
        if field is None:
            for candidate in ("licence", "license", "max_stars_repo_licenses", "licenses"):
                if candidate in record:
                    field = candidate
                    break
        if field is None or record.get(field) is None:
            return None
        value = record[field]
        if isinstance(value, (list, tuple)):
            return ", ".join(str(v) for v in value)
        return str(value)

    def _iterate(self) -> Iterator[Document]:
        for where, record in self._records():
            lang_field, path_field = self._fields_for(where, record)
            lang = self._language_of(record, lang_field, path_field)
            text = record.get(self.content_field)
            if lang is None or not isinstance(text, str):
                continue
            source = f"{where}"
            if path_field is not None and record.get(path_field) is not None:
                source += f":{record[path_field]}"
            yield Document(text, lang, source, self._licence_of(record))

    def _fields_for(self, where: str, record: Mapping[str, Any]):
        key = where.rsplit("#", 1)[0]
        cache = self.__dict__.setdefault("_field_cache", {})
        if key not in cache:
            cache[key] = self._fields(record.keys(), key)
        return cache[key]

    def available_languages(self) -> tuple[str, ...]:
        if self._available is None:
            seen = {doc.language for doc in self._iterate()}
            self._available = tuple(x for x in LANGUAGES if x in seen)
        return self._available

    def _documents(self, language: str) -> Iterator[Document]:
        for doc in self._iterate():
            if doc.language == language:
                yield doc


def _expand(path: Path, suffixes: tuple[str, ...]) -> list[Path]:
    if path.is_file():
        return [path]
    files = sorted(p for p in path.rglob("*") if p.is_file() and p.name.endswith(suffixes))
    if not files:
        raise ValueError(f"{path}: no files ending in {', '.join(suffixes)}")
    return files


class JsonlCorpus(_RecordCorpus):
    kind = "jsonl"

    def _records(self):
        for file in _expand(self.path, (".jsonl", ".jsonl.gz", ".json.gz", ".ndjson")):
            for lineno, record in iter_jsonl(file):
                yield f"{file}#{lineno}", record


class ParquetCorpus(_RecordCorpus):
    kind = "parquet"

    def _records(self):
        import pyarrow.parquet as pq

        for file in _expand(self.path, (".parquet",)):
            pf = pq.ParquetFile(file)
            row = 0
            for batch in pf.iter_batches(batch_size=1024):
                for record in batch.to_pylist():
                    yield f"{file}#{row}", record
                    row += 1


class HFDiskCorpus(_RecordCorpus):
    """A ``datasets`` dataset saved with ``save_to_disk`` (a DatasetDict uses ``split``)."""

    kind = "hf_disk"

    def __init__(self, path, *, split: str | None = None, **kwargs):
        super().__init__(path, **kwargs)
        self.split = split

    def _dataset(self):
        import datasets

        ds = datasets.load_from_disk(str(self.path))
        if isinstance(ds, datasets.DatasetDict):
            split = self.split or ("train" if "train" in ds else next(iter(ds)))
            if split not in ds:
                raise ValueError(f"{self.path}: no split {split!r} (splits: {', '.join(ds)})")
            ds = ds[split]
        return ds

    def _records(self):
        ds = self._dataset()
        for i, record in enumerate(ds):
            yield f"{self.path}#{i}", record


_KINDS = {"embedded": EmbeddedCorpus, "files": FileCorpus, "jsonl": JsonlCorpus,
          "parquet": ParquetCorpus, "hf_disk": HFDiskCorpus}
#: corpus kinds defined outside ``pretrain``: kind -> ``"module:function"``, imported when a spec
#: of that kind is opened; the function takes ``languages=`` and the spec's other fields and
#: returns a corpus (``documents(language)``, ``languages``), raising ValueError for a bad spec
CORPUS_PLUGINS: dict[str, str] = {"babel": "lensprobe.babel.corpus:babel_corpus"}


def corpus_kinds() -> tuple[str, ...]:
    """Every kind :func:`open_corpus` accepts: the built-in ones, then :data:`CORPUS_PLUGINS`."""
    return (*_KINDS, *CORPUS_PLUGINS)


def corpus_plugin(kind: str) -> Callable[..., Any]:
    """The factory of a plugin corpus kind (:data:`CORPUS_PLUGINS`), imported now."""
    target = CORPUS_PLUGINS[kind]
    module, _, name = target.partition(":")
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as exc:
        raise ValueError(f"corpus kind {kind!r}: cannot load {target} ({exc})") from exc


def open_corpus(spec: dict | str, *, languages: Sequence[str] | None = None) -> Corpus:
    """A :class:`Corpus` from a spec (see the module docstring); ``languages`` restricts it."""
    if isinstance(spec, Corpus):
        return spec
    if isinstance(spec, (str, os.PathLike)):
        text = str(spec)
        if text == "embedded":
            spec = {"kind": "embedded"}
        elif Path(text).is_dir() and any(Path(text).glob("dataset_info.json")) or \
                Path(text).is_dir() and any(Path(text).glob("dataset_dict.json")):
            spec = {"kind": "hf_disk", "path": text}
        elif Path(text).is_dir():
            spec = {"kind": "files", "path": text}
        elif text.endswith((".jsonl", ".jsonl.gz", ".ndjson")):
            spec = {"kind": "jsonl", "path": text}
        elif text.endswith(".parquet"):
            spec = {"kind": "parquet", "path": text}
        else:
            raise ValueError(f"corpus {text!r}: expected 'embedded', a directory, a .jsonl or a "
                             f".parquet path, or a mapping with 'kind'")
    if not isinstance(spec, Mapping):
        raise ValueError(f"corpus spec must be a string or a mapping, got {type(spec).__name__}")
    spec = dict(spec)
    kind = spec.pop("kind", None)
    if kind not in corpus_kinds():
        raise ValueError(f"corpus spec: 'kind' must be one of {', '.join(corpus_kinds())}, got {kind!r}")
    if "languages" in spec:
        spec_languages = spec.pop("languages")
        languages = languages or spec_languages
    if kind in CORPUS_PLUGINS:
        return corpus_plugin(kind)(languages=languages, **spec)
    cls = _KINDS[kind]
    if kind != "embedded" and "path" not in spec:
        raise ValueError(f"corpus spec of kind {kind!r}: missing 'path'")
    try:
        if kind == "embedded":
            return cls(languages=languages, **spec)
        path = spec.pop("path")
        return cls(path, languages=languages, **spec)
    except TypeError as exc:
        raise ValueError(f"corpus spec of kind {kind!r}: {exc}") from exc


__all__ = ["Document", "Corpus", "EmbeddedCorpus", "FileCorpus", "JsonlCorpus", "ParquetCorpus",
           "HFDiskCorpus", "open_corpus", "corpus_kinds", "CORPUS_PLUGINS", "corpus_plugin"]
