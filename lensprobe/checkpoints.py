"""Checkpoint series: find, order, hash and load the checkpoints of one training run.

A :class:`CheckpointSeries` is an ordered list of :class:`CheckpointInfo` (one per HF checkpoint
directory) built from

* a run directory (``CheckpointSeries(run_dir)``) holding ``checkpoint-N`` / ``step-N`` /
  ``stepN`` / ``stepN-tokens4B`` / ``step-000100-2BT`` sub-directories, or being a model itself;
* an explicit list of paths (:meth:`CheckpointSeries.from_paths`);
* Hub revisions (:meth:`CheckpointSeries.from_hub`, e.g. Pythia's ``step1000`` branches).

Per checkpoint it reads the run's own metadata (``checkpoint.json`` written by ``pretrain``,
HF Trainer's ``trainer_state.json``), hashes the weights (content of the safetensors tensors,
independent of sharding and file metadata), hashes the tokenizer, joins the run's loss logs
(``loss.jsonl``, ``val.jsonl``) and reports broken checkpoints instead of failing.

:meth:`CheckpointSeries.iter_models` keeps ONE model resident: the architecture is built once and
every later checkpoint's tensors are copied into it in place (tied embeddings stay tied), with the
next checkpoint read in a background thread while the caller works on the current one.
"""
from __future__ import annotations

import concurrent.futures
import hashlib
import json
import math
import os
import re
import struct
import warnings
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Iterator, Literal, Sequence

import torch

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

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


# ----------------------------------------------------------------------------------------------
# errors and warnings


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


# ----------------------------------------------------------------------------------------------
# names: checkpoint-N, step-N, stepN, stepN-tokens4B, step-000100-2BT, stage1-step10-tokens1B

_UNITS: dict[str, int] = {"": 1, "K": 10**3, "M": 10**6, "B": 10**9, "G": 10**9, "T": 10**12}
_NUM = r"\d+(?:\.\d+)?"
_NAME_RE = re.compile(
    rf"""^(?:stage\d+[-_])?
    (?:checkpoint|ckpt|step|iter)[-_]?(?P<step>\d+)
    (?:[-_](?:
        tok(?:en)?s?[-_]?(?P<tok_a>{_NUM})(?P<unit_a>[KMGBT]?)
      | (?P<tok_b>{_NUM})(?P<unit_b>[KMGBT])T
    ))?$""",
    re.X | re.I,
)
_TOKENS_RE = re.compile(rf"^\s*(?P<num>{_NUM})\s*(?P<unit>[KMGBT]?)\s*$", re.I)


@dataclass(frozen=True)
class ParsedName:
    """What a checkpoint directory / revision name says: its step and (rounded) token count."""

    step: int
    tokens: int | None = None
    #: the value of one unit in the last written digit of the token count ("4.5B" -> 1e8)
    tokens_resolution: int | None = None


def parse_token_count(text: str) -> int:
    """``"4B"`` -> 4_000_000_000, ``"1.5T"``, ``"500M"``, ``"12K"``, ``"4096"`` (case-insensitive)."""
    tokens, _ = _parse_tokens(text)
    return tokens


def _parse_tokens(text: str) -> tuple[int, int]:
    m = _TOKENS_RE.match(str(text))
    if not m:
        raise ValueError(f"not a token count: {text!r} (expected e.g. '4B', '1.5T', '500M', '4096')")
    num, unit = m.group("num"), m.group("unit").upper()
    try:
        value = Decimal(num) * _UNITS[unit]
    except InvalidOperation as exc:  # pragma: no cover - regex guarantees a number
        raise ValueError(f"not a token count: {text!r}") from exc
    decimals = len(num.split(".")[1]) if "." in num else 0
    resolution = max(1, int(Decimal(_UNITS[unit]) / (Decimal(10) ** decimals)))
    return int(value.to_integral_value()), resolution


def parse_checkpoint_name(name: str) -> ParsedName | None:
    """Parse a checkpoint directory or revision name; ``None`` when it is not a checkpoint name.

    Accepted: ``checkpoint-N``, ``step-N``, ``stepN``, ``step_N``, ``ckpt-N``, ``iter_N``, each
    optionally followed by ``-tokens<count>`` (``step1000-tokens4B``, OLMo style, optionally
    prefixed by ``stage1-``) or ``-<count><unit>T`` (``step-000100-2BT`` = 2B tokens).
    """
    m = _NAME_RE.match(name)
    if not m:
        return None
    step = int(m.group("step"))
    num = m.group("tok_a") or m.group("tok_b")
    if num is None:
        return ParsedName(step)
    unit = m.group("unit_a") if m.group("tok_a") else m.group("unit_b")
    tokens, resolution = _parse_tokens(num + (unit or ""))
    return ParsedName(step, tokens, resolution)


# ----------------------------------------------------------------------------------------------
# safetensors: header validation and content hash

_ST_DTYPE_SIZES: dict[str, float] = {
    "BOOL": 1, "U8": 1, "I8": 1, "F8_E5M2": 1, "F8_E4M3": 1, "F8_E8M0": 1,
    "I16": 2, "U16": 2, "F16": 2, "BF16": 2, "I32": 4, "U32": 4, "F32": 4,
    "F64": 8, "I64": 8, "U64": 8, "C64": 8, "F4": 0.5, "F6_E2M3": 0.75, "F6_E3M2": 0.75,
}
_TORCH_TO_ST: dict[torch.dtype, str] = {
    torch.bool: "BOOL", torch.uint8: "U8", torch.int8: "I8", torch.int16: "I16",
    torch.float16: "F16", torch.bfloat16: "BF16", torch.int32: "I32", torch.float32: "F32",
    torch.float64: "F64", torch.int64: "I64",
}
for _name, _st in (("float8_e5m2", "F8_E5M2"), ("float8_e4m3fn", "F8_E4M3"), ("uint16", "U16"),
                   ("uint32", "U32"), ("uint64", "U64"), ("float8_e8m0fnu", "F8_E8M0")):
    if hasattr(torch, _name):
        _TORCH_TO_ST[getattr(torch, _name)] = _st
_MAX_HEADER = 100 * 2**20
_CHUNK = 8 * 2**20


def read_safetensors_header(path: str | Path) -> tuple[dict[str, dict[str, Any]], int]:
    """Parse and validate a safetensors file's header without reading the tensors.

    Returns ``(tensors, data_start)`` where ``tensors`` maps name -> {dtype, shape, data_offsets}.
    Raises :class:`CheckpointError` naming the file when the header is unreadable, a tensor's
    byte range does not match its dtype and shape, or the file is shorter than its header says
    (a truncated write).
    """
    path = Path(path)
    try:
        size = path.stat().st_size
        with open(path, "rb") as fh:
            head = fh.read(8)
            if len(head) < 8:
                raise CheckpointError(f"{path}: not a safetensors file ({size} bytes)")
            (n,) = struct.unpack("<Q", head)
            if n > min(size - 8, _MAX_HEADER):
                raise CheckpointError(
                    f"{path}: corrupt safetensors header (header length {n} > file size {size})")
            raw = fh.read(n)
    except OSError as exc:
        raise CheckpointError(f"{path}: cannot read ({exc})") from exc
    try:
        header = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{path}: corrupt safetensors header ({exc})") from exc
    if not isinstance(header, dict):
        raise CheckpointError(f"{path}: corrupt safetensors header (not a JSON object)")
    header.pop("__metadata__", None)
    data_size = size - 8 - n
    for name, info in header.items():
        try:
            dtype, shape, (begin, end) = info["dtype"], info["shape"], info["data_offsets"]
        except (TypeError, KeyError, ValueError) as exc:
            raise CheckpointError(f"{path}: corrupt safetensors header entry {name!r}") from exc
        if not (0 <= begin <= end):
            raise CheckpointError(f"{path}: tensor {name!r} has invalid offsets {begin}..{end}")
        if end > data_size:
            raise CheckpointError(
                f"{path}: truncated file: tensor {name!r} ends at byte {end} of the data section "
                f"but the file holds {data_size} data bytes")
        itemsize = _ST_DTYPE_SIZES.get(dtype)
        if itemsize is not None and math.prod(shape) * itemsize != end - begin:
            raise CheckpointError(
                f"{path}: tensor {name!r} ({dtype} {shape}) has {end - begin} bytes, expected "
                f"{int(math.prod(shape) * itemsize)}")
    return header, 8 + n


def _digest() -> "hashlib._Hash":
    return hashlib.blake2b(digest_size=16)


def _combine(entries: list[tuple[str, str, list[int], str]], where: str) -> str:
    names = [e[0] for e in entries]
    if len(set(names)) != len(names):
        dup = sorted({n for n in names if names.count(n) > 1})[:3]
        raise CheckpointError(f"{where}: tensor(s) {dup} stored more than once across shards")
    top = _digest()
    for name, dtype, shape, digest in sorted(entries):
        top.update(json.dumps([name, dtype, list(shape), digest]).encode() + b"\n")
    return top.hexdigest()


def weight_hash(files: Sequence[str | Path]) -> str:
    """Content hash of the tensors in safetensors ``files`` (one checkpoint, all shards).

    Each tensor contributes ``(name, dtype, shape, blake2b(raw bytes))``; the tensors are combined
    sorted by name, so the hash ignores shard layout, tensor order and the ``__metadata__`` block,
    but changes with any weight byte, dtype (a bf16 copy of fp32 weights hashes differently) or
    tensor name. Files are streamed in 8 MiB chunks; 32 hex characters (128 bits).
    """
    files = [Path(f) for f in files]
    if not files:
        raise CheckpointError("weight_hash: no safetensors files given")
    entries: list[tuple[str, str, list[int], str]] = []
    buf = bytearray(_CHUNK)
    view = memoryview(buf)
    for file in files:
        header, start = read_safetensors_header(file)
        with open(file, "rb", buffering=0) as fh:
            for name, info in sorted(header.items(), key=lambda kv: kv[1]["data_offsets"][0]):
                begin, end = info["data_offsets"]
                fh.seek(start + begin)
                h = _digest()
                remaining = end - begin
                while remaining:
                    got = fh.readinto(view[: min(remaining, _CHUNK)])
                    if not got:
                        raise CheckpointError(f"{file}: truncated while reading tensor {name!r}")
                    h.update(view[:got])
                    remaining -= got
                entries.append((name, info["dtype"], info["shape"], h.hexdigest()))
    return _combine(entries, str(files[0].parent))


def _state_dict_hash(state_dict: dict[str, torch.Tensor], where: str) -> str:
    """:func:`weight_hash` computed from tensors already read from the files (no second read)."""
    entries = []
    for name, t in state_dict.items():
        st = _TORCH_TO_ST.get(t.dtype)
        if st is None:
            raise CheckpointError(f"{where}: cannot hash tensor {name!r} of dtype {t.dtype}")
        h = _digest()
        if t.numel():
            h.update(t.detach().contiguous().reshape(-1).view(torch.uint8).numpy().data)
        entries.append((name, st, list(t.shape), h.hexdigest()))
    return _combine(entries, where)


# ----------------------------------------------------------------------------------------------
# tokenizer identity

#: files that carry a vocabulary: a checkpoint "has a tokenizer" when one of them exists
TOKENIZER_VOCAB_FILES: tuple[str, ...] = (
    "tokenizer.json", "tokenizer.model", "vocab.json", "merges.txt", "vocab.txt", "spiece.model",
    "sentencepiece.bpe.model",
)
#: configuration files that change tokenization and are hashed too
TOKENIZER_AUX_FILES: tuple[str, ...] = ("special_tokens_map.json", "added_tokens.json", "tokenizer_config.json")
#: keys dropped before hashing: paths, versions and settings that do not change token ids
VOLATILE_TOKENIZER_KEYS: frozenset[str] = frozenset({
    "name_or_path", "_name_or_path", "tokenizer_file", "transformers_version", "_commit_hash",
    "chat_template", "model_max_length", "tokenizer_class", "backend", "truncation", "padding",
})


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


def has_tokenizer(path: str | Path) -> bool:
    """Whether directory ``path`` holds a tokenizer (a vocabulary-carrying file)."""
    return any((Path(path) / f).is_file() for f in TOKENIZER_VOCAB_FILES)


def _canonical_json(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _canonical_json(v) for k, v in obj.items() if k not in VOLATILE_TOKENIZER_KEYS}
    if isinstance(obj, list):
        return [_canonical_json(v) for v in obj]
    return obj


def tokenizer_hash(path: str | Path) -> str:
    """Hash of the tokenizer files in directory ``path`` (32 hex characters).

    Hashed: the vocabulary files (:data:`TOKENIZER_VOCAB_FILES`) and
    :data:`TOKENIZER_AUX_FILES`; JSON files are parsed and re-serialised with sorted keys after
    dropping :data:`VOLATILE_TOKENIZER_KEYS` at any depth, so formatting, paths and versions do
    not matter; other files are hashed byte for byte.
    """
    path = Path(path)
    h = _digest()
    found = False
    for fname in TOKENIZER_VOCAB_FILES + TOKENIZER_AUX_FILES:
        f = path / fname
        if not f.is_file():
            continue
        found = found or fname in TOKENIZER_VOCAB_FILES
        data = f.read_bytes()
        if fname.endswith(".json"):
            try:
                data = json.dumps(_canonical_json(json.loads(data)), sort_keys=True,
                                  separators=(",", ":")).encode()
            except (UnicodeDecodeError, json.JSONDecodeError) as exc:
                raise CheckpointError(f"{f}: unreadable tokenizer file ({exc})") from exc
        h.update(fname.encode() + b"\0" + hashlib.blake2b(data, digest_size=16).digest())
    if not found:
        raise CheckpointError(f"{path}: no tokenizer files ({', '.join(TOKENIZER_VOCAB_FILES)})")
    return h.hexdigest()


# ----------------------------------------------------------------------------------------------
# loss logs written by pretrain: loss.jsonl (per optimizer step), val.jsonl (per snapshot)


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    for i, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            last = i == len(lines)
            warnings.warn(f"{path}:{i}: skipping unreadable line"
                          + (" (truncated by an interrupted write?)" if last else ""),
                          CheckpointWarning, stacklevel=3)
            continue
        if not isinstance(row, dict) or "step" not in row:
            warnings.warn(f"{path}:{i}: skipping line without a 'step' field", CheckpointWarning,
                          stacklevel=3)
            continue
        rows.append(row)
    return rows


def load_loss_log(path: str | Path) -> "pd.DataFrame":
    """Read a ``loss.jsonl`` training log into a DataFrame sorted by step.

    ``loss_by_language`` is flattened into ``loss_<language>`` columns. When a step appears more
    than once (a run resumed from an earlier checkpoint re-logs the steps after it) the LAST
    occurrence wins, because the resumed run is the one that produced the later checkpoints.
    Unreadable lines are skipped with a :class:`CheckpointWarning` naming file and line.
    """
    import pandas as pd

    path = Path(path)
    records, languages = [], set()
    for row in _read_jsonl(path):
        rec = {k: v for k, v in row.items() if k != "loss_by_language"}
        by_lang = row.get("loss_by_language") or {}
        if not isinstance(by_lang, dict):
            raise CheckpointError(f"{path}: step {row['step']}: 'loss_by_language' must be an object")
        for lang, value in by_lang.items():
            rec[f"loss_{lang}"] = value
            languages.add(str(lang))
        records.append(rec)
    df = pd.DataFrame.from_records(records)
    if df.empty:
        df = pd.DataFrame({"step": pd.Series(dtype="int64"), "loss": pd.Series(dtype="float64")})
    else:
        df["step"] = _int_steps(df["step"], path)
        df = df.drop_duplicates("step", keep="last").sort_values("step", kind="stable").reset_index(drop=True)
    df.attrs["languages"] = sorted(languages)
    return df


def _int_steps(steps: "pd.Series", path: Path) -> "pd.Series":
    import pandas as pd

    numeric = pd.to_numeric(steps, errors="coerce")
    bad = steps[numeric.isna() | (numeric != numeric.round())]
    if len(bad):
        raise CheckpointError(f"{path}: 'step' must be an integer, got {bad.iloc[0]!r}")
    return numeric.astype("int64")


def load_val_log(path: str | Path) -> "pd.DataFrame":
    """Read a ``val.jsonl`` log (step, tokens, language, loss, bpb); last entry per (step, language) wins."""
    import pandas as pd

    path = Path(path)
    df = pd.DataFrame.from_records(_read_jsonl(path))
    if df.empty:
        return pd.DataFrame({"step": pd.Series(dtype="int64"), "language": pd.Series(dtype=object),
                             "loss": pd.Series(dtype="float64")})
    if "language" not in df or df["language"].isna().any():
        raise CheckpointError(f"{path}: validation log rows need a 'language' field")
    df["step"] = _int_steps(df["step"], path)
    df = df.drop_duplicates(["step", "language"], keep="last")
    return df.sort_values(["step", "language"], kind="stable").reset_index(drop=True)


# ----------------------------------------------------------------------------------------------
# one checkpoint

Status = Literal["ok", "duplicate", "broken"]


@dataclass
class CheckpointInfo:
    """One checkpoint of a series: where it is, when it is, what it holds.

    ``status`` is ``"ok"``, ``"duplicate"`` (same weight hash as ``duplicate_of``, an earlier
    checkpoint) or ``"broken"`` (``reason`` says why; such checkpoints are not iterated).
    ``step_source`` / ``tokens_source`` say where the numbers came from: ``"given"``,
    ``"metadata"`` (checkpoint.json / trainer_state.json), ``"name"`` or ``"loss_log"``.
    Loss fields are NaN / empty when the run has no log entry at this step.
    """

    name: str
    path: Path
    step: int | None = None
    tokens: int | None = None
    weight_hash: str | None = None
    duplicate_of: str | None = None
    status: Status = "ok"
    reason: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    tokens_by_language: dict[str, int] = field(default_factory=dict)
    step_source: str | None = None
    tokens_source: str | None = None
    revision: str | None = None
    weight_files: tuple[Path, ...] = ()
    tokenizer_path: Path | None = None
    tokenizer_hash: str | None = None
    tokenizer_inherited: bool = False
    train_loss: float = math.nan
    train_loss_smoothed: float = math.nan
    train_loss_by_language: dict[str, float] = field(default_factory=dict)
    val_loss: dict[str, float] = field(default_factory=dict)
    val_bpb: dict[str, float] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def ok(self) -> bool:
        """Not broken (duplicates are usable)."""
        return self.status != "broken"

    def to_row(self) -> dict[str, Any]:
        """Flat dict for :meth:`CheckpointSeries.to_dataframe`."""
        row: dict[str, Any] = {
            "name": self.name, "path": str(self.path), "step": self.step, "tokens": self.tokens,
            "weight_hash": self.weight_hash, "duplicate_of": self.duplicate_of,
            "status": self.status, "reason": self.reason, "revision": self.revision,
            "tokenizer_hash": self.tokenizer_hash, "train_loss": self.train_loss,
            "train_loss_smoothed": self.train_loss_smoothed,
        }
        for lang, v in sorted(self.tokens_by_language.items()):
            row[f"tokens_{lang}"] = v
        for lang, v in sorted(self.train_loss_by_language.items()):
            row[f"train_loss_{lang}"] = v
        for lang, v in sorted(self.val_loss.items()):
            row[f"val_loss_{lang}"] = v
        for lang, v in sorted(self.val_bpb.items()):
            row[f"val_bpb_{lang}"] = v
        return row


def _find_weight_files(path: Path) -> tuple[Path, ...]:
    """The safetensors files of a checkpoint; raises CheckpointError with the reason."""
    index = path / "model.safetensors.index.json"
    if index.is_file():
        try:
            weight_map = json.loads(index.read_text())["weight_map"]
            shards = sorted(set(weight_map.values()))
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            raise CheckpointError(f"{index}: unreadable shard index ({exc!r})") from exc
        missing = [s for s in shards if not (path / s).is_file()]
        if missing:
            raise CheckpointError(f"{path}: shard(s) listed in {index.name} are missing: {missing}")
        return tuple(path / s for s in shards)
    single = path / "model.safetensors"
    if single.is_file():
        return (single,)
    shards = sorted(p for p in path.glob("*.safetensors") if not p.name.startswith(("adapter_", ".")))
    if shards:
        return tuple(shards)
    pickles = sorted(p.name for p in path.glob("*.bin")) + sorted(p.name for p in path.glob("*.pt"))
    if pickles:
        raise CheckpointError(
            f"{path}: only pickle weights ({', '.join(pickles[:3])}); lensprobe reads safetensors "
            "(convert with model.save_pretrained(..., safe_serialization=True))")
    raise CheckpointError(f"{path}: missing weights (no model.safetensors or model.safetensors.index.json)")


def _read_meta(path: Path) -> dict[str, Any]:
    meta: dict[str, Any] = {}
    cj = path / "checkpoint.json"
    if cj.is_file():
        try:
            data = json.loads(cj.read_text())
        except (OSError, ValueError) as exc:
            raise CheckpointError(f"{cj}: unreadable checkpoint metadata ({exc})") from exc
        if not isinstance(data, dict):
            raise CheckpointError(f"{cj}: checkpoint metadata must be a JSON object")
        meta.update(data)
    ts = path / "trainer_state.json"
    if ts.is_file():
        try:
            data = json.loads(ts.read_text())
        except (OSError, ValueError) as exc:
            raise CheckpointError(f"{ts}: unreadable trainer state ({exc})") from exc
        meta["trainer_state"] = {k: data.get(k) for k in ("global_step", "num_input_tokens_seen", "epoch")
                                 if isinstance(data, dict) and k in data}
    return meta


def _int_or_none(value: Any, where: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != int(value):
        raise CheckpointError(f"{where}: expected an integer, got {value!r}")
    return int(value)


def _inspect(info: CheckpointInfo, *, step_priority: str) -> None:
    """Fill metadata, step, tokens, weight files, config and tokenizer; mark broken on failure."""
    path = info.path
    try:
        if not path.is_dir():
            raise CheckpointError(f"{path}: not a directory")
        meta = _read_meta(path)
        info.meta.update(meta)
        parsed = parse_checkpoint_name(info.name)
        where = str(path / "checkpoint.json")
        meta_step = _int_or_none(meta.get("step"), f"{where} field 'step'")
        if meta_step is None and "trainer_state" in meta:
            meta_step = _int_or_none(meta["trainer_state"].get("global_step"),
                                     f"{path / 'trainer_state.json'} field 'global_step'")
        meta_tokens = _int_or_none(meta.get("tokens"), f"{where} field 'tokens'")
        if meta_tokens is None and "trainer_state" in meta:
            meta_tokens = _int_or_none(meta["trainer_state"].get("num_input_tokens_seen") or None,
                                       f"{path / 'trainer_state.json'} field 'num_input_tokens_seen'")
        by_lang = meta.get("tokens_by_language") or {}
        if not isinstance(by_lang, dict):
            raise CheckpointError(f"{where}: field 'tokens_by_language' must be an object")
        info.tokens_by_language = {str(k): _int_or_none(v, f"{where} tokens_by_language[{k!r}]")
                                   for k, v in by_lang.items()}
        _resolve_step(info, parsed, meta_step, step_priority)
        _resolve_tokens(info, parsed, meta_tokens)
        cfg = path / "config.json"
        try:
            info.config = json.loads(cfg.read_text())
        except FileNotFoundError as exc:
            raise CheckpointError(f"{path}: missing config.json") from exc
        except (OSError, ValueError) as exc:
            raise CheckpointError(f"{cfg}: unreadable config ({exc})") from exc
        if not isinstance(info.config, dict) or "model_type" not in info.config:
            raise CheckpointError(f"{cfg}: unreadable config (no 'model_type')")
        info.weight_files = _find_weight_files(path)
        for f in info.weight_files:
            read_safetensors_header(f)
        if has_tokenizer(path):
            info.tokenizer_path = path
            info.tokenizer_hash = tokenizer_hash(path)
    except CheckpointError as exc:
        info.status, info.reason = "broken", str(exc)


def _resolve_step(info: CheckpointInfo, parsed: ParsedName | None, meta_step: int | None,
                  step_priority: str) -> None:
    name_step = parsed.step if parsed else None
    if info.step is not None:  # given explicitly: wins
        info.step_source = "given"
        other = meta_step if meta_step is not None else name_step
        if other is not None and other != info.step:
            warnings.warn(f"checkpoint {info.name} ({info.path}): given step {info.step} differs "
                          f"from the step its metadata/name says ({other}); using {info.step}",
                          CheckpointWarning, stacklevel=4)
        return
    if meta_step is not None and name_step is not None and meta_step != name_step:
        chosen, source = ((meta_step, "metadata") if step_priority == "metadata"
                          else (name_step, "name"))
        warnings.warn(f"checkpoint {info.name} ({info.path}): name says step {name_step} but its "
                      f"metadata says {meta_step}; using {chosen} (step_priority={step_priority!r})",
                      CheckpointWarning, stacklevel=4)
        info.step, info.step_source = chosen, source
    elif meta_step is not None:
        info.step, info.step_source = meta_step, "metadata"
    elif name_step is not None:
        info.step, info.step_source = name_step, "name"


def _resolve_tokens(info: CheckpointInfo, parsed: ParsedName | None, meta_tokens: int | None) -> None:
    name_tokens = parsed.tokens if parsed else None
    if info.tokens is not None:
        info.tokens_source = "given"
    elif meta_tokens is not None:
        info.tokens, info.tokens_source = meta_tokens, "metadata"
        if name_tokens is not None and abs(name_tokens - meta_tokens) > (parsed.tokens_resolution or 1):
            warnings.warn(f"checkpoint {info.name} ({info.path}): name says {name_tokens} tokens but "
                          f"its metadata says {meta_tokens}; using the metadata", CheckpointWarning,
                          stacklevel=4)
    elif name_tokens is not None:
        info.tokens, info.tokens_source = name_tokens, "name"


# ----------------------------------------------------------------------------------------------
# in-place state-dict loading


def _read_state_dict(files: Sequence[Path]) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    state: dict[str, torch.Tensor] = {}
    for f in files:
        try:
            part = load_file(str(f), device="cpu")
        except Exception as exc:  # safetensors raises its own error types
            raise CheckpointError(f"{f}: cannot read tensors ({exc})") from exc
        clash = state.keys() & part.keys()
        if clash:
            raise CheckpointError(f"{f}: tensor(s) {sorted(clash)[:3]} also stored in another shard")
        state.update(part)
    return state


def _materialize(state: dict[str, torch.Tensor], dtype: torch.dtype) -> dict[str, torch.Tensor]:
    """Own, in-memory copies (floating tensors in ``dtype``) of memory-mapped tensors: reading
    the pages here is the I/O the prefetch thread takes off the caller's hands."""
    return {k: v.to(dtype, copy=True) if v.is_floating_point() else v.clone() for k, v in state.items()}


def _ignored_unexpected(model: torch.nn.Module) -> list[re.Pattern[str]]:
    pats = [re.compile(p) for p in (getattr(model, "_keys_to_ignore_on_load_unexpected", None) or [])]
    persistent = set(model.state_dict().keys())
    for name, _ in model.named_buffers():
        if name not in persistent:  # non-persistent buffers (rotary inv_freq, causal masks)
            pats.append(re.compile(re.escape(name.rsplit(".", 1)[-1]) + "$"))
    return pats


def load_state_dict_in_place(model: torch.nn.Module, state_dict: dict[str, torch.Tensor], *,
                             where: str = "checkpoint", share: bool = False) -> None:
    """Copy ``state_dict`` into ``model``'s existing parameters and buffers (no re-allocation).

    Keys are checked strictly: every parameter and persistent buffer must be provided, except
    aliases of a tied parameter (one key of each alias group suffices: tied checkpoints have no
    ``lm_head.weight``). A checkpoint saved from the base model (keys without the
    ``base_model_prefix``) is accepted. Keys the model declares ignorable and non-persistent
    buffers (e.g. ``rotary_emb.inv_freq``) are skipped. Anything else missing or unexpected, or
    a shape mismatch, raises :class:`StateDictMismatchError` naming ``where``. Values are cast to
    each parameter's dtype and device. Tied embeddings are re-tied afterwards if needed.

    ``share=True`` lets a parameter adopt a given tensor as its storage (``param.data = tensor``,
    no copy) when dtype, device and shape already match; the Parameter objects (and so ties and
    hooks) stay the same. Only pass tensors nobody else will modify.
    """
    targets = model.state_dict(keep_vars=True)
    prefix = getattr(model, "base_model_prefix", "") or ""
    if prefix and sum(f"{prefix}.{k}" in targets for k in state_dict) > sum(k in targets for k in state_dict):
        state_dict = {(f"{prefix}.{k}" if f"{prefix}.{k}" in targets else k): v for k, v in state_dict.items()}
    alias_groups: dict[int, list[str]] = {}
    for key, t in targets.items():
        alias_groups.setdefault(id(t), []).append(key)
    ignore = _ignored_unexpected(model)
    unexpected = [k for k in state_dict if k not in targets and not any(p.search(k) for p in ignore)]
    missing = [keys[0] for keys in alias_groups.values() if not any(k in state_dict for k in keys)]
    if missing or unexpected:
        msg = [f"{where}: tensors do not match the resident model ({type(model).__name__})"]
        if missing:
            msg.append(f"missing {len(missing)} key(s), e.g. {missing[:5]}")
        if unexpected:
            msg.append(f"unexpected {len(unexpected)} key(s), e.g. {unexpected[:5]}")
        raise StateDictMismatchError("; ".join(msg))
    for key, value in state_dict.items():
        t = targets.get(key)
        if t is not None and tuple(t.shape) != tuple(value.shape):
            raise StateDictMismatchError(
                f"{where}: tensor {key!r} has shape {tuple(value.shape)}, the resident model "
                f"expects {tuple(t.shape)}")
    for keys in alias_groups.values():
        present = [k for k in keys if k in state_dict]
        for k in present[1:]:
            if not torch.equal(state_dict[k], state_dict[present[0]]):
                raise StateDictMismatchError(
                    f"{where}: {k!r} and {present[0]!r} are tied in the model but differ in the checkpoint")
    with torch.no_grad():
        for keys in alias_groups.values():
            k = next(k for k in keys if k in state_dict)
            target, value = targets[k], state_dict[k]
            if share and value.dtype == target.dtype and value.device == target.device \
                    and value.is_contiguous():
                target.data = value
            else:
                target.copy_(value)
    _ensure_tied(model)


def _ensure_tied(model: torch.nn.Module) -> None:
    config = getattr(model, "config", None)
    if not getattr(config, "tie_word_embeddings", False):
        return
    try:
        inp, out = model.get_input_embeddings(), model.get_output_embeddings()
    except (AttributeError, NotImplementedError):
        return
    if inp is not None and out is not None and out.weight is not inp.weight:
        model.tie_weights()
        if model.get_output_embeddings().weight is not model.get_input_embeddings().weight:
            raise StateDictMismatchError(f"{type(model).__name__}: could not re-tie the embeddings")


# ----------------------------------------------------------------------------------------------
# loading the first model (lensprobe.engine.adapters.load_model when available)


def _load_model(path: Path, *, dtype: torch.dtype, device: str, check_lens: bool) -> Any:
    """Build a fresh model with :func:`lensprobe.engine.adapters.load_model` (no tokenizer: the series has one)."""
    import inspect

    from lensprobe.engine.adapters import load_model

    kwargs: dict[str, Any] = dict(dtype=dtype, device=device, check_lens=check_lens)
    if "load_tokenizer" in inspect.signature(load_model).parameters:
        kwargs["load_tokenizer"] = False
    return load_model(str(path), **kwargs)


def _verify_lens(model: torch.nn.Module, where: str) -> None:
    from lensprobe.engine.adapters import verify_lens

    try:
        verify_lens(model)
    except Exception as exc:
        exc.add_note(f"while checking the logit lens of {where} after an in-place load")
        raise


_VOLATILE_CONFIG_KEYS = frozenset({
    "transformers_version", "_name_or_path", "name_or_path", "torch_dtype", "dtype", "use_cache",
    "_commit_hash", "_attn_implementation", "_attn_implementation_autoset", "attn_implementation",
    "_attn_implementation_internal", "output_hidden_states", "output_attentions", "return_dict",
    "architectures", "_experts_implementation",
})


def _architecture(path: Path) -> dict[str, Any]:
    """The config of ``path`` as loaded by transformers, minus keys that do not define the network."""
    from transformers import AutoConfig

    try:
        cfg = AutoConfig.from_pretrained(str(path)).to_dict()
    except Exception as exc:
        raise CheckpointError(f"{path / 'config.json'}: unreadable config ({exc})") from exc
    return {k: v for k, v in cfg.items() if k not in _VOLATILE_CONFIG_KEYS}


def _diff_keys(a: dict[str, Any], b: dict[str, Any]) -> list[str]:
    return sorted(k for k in a.keys() | b.keys() if a.get(k, "<absent>") != b.get(k, "<absent>"))


# ----------------------------------------------------------------------------------------------
# the series


def _check_choice(name: str, value: Any, choices: Iterable[Any]) -> None:
    choices = tuple(choices)
    if value not in choices:
        raise ValueError(f"{name} must be one of {choices}, got {value!r}")


def _check_int(name: str, value: Any, *, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return value


def _as_dtype(dtype: Any) -> torch.dtype:
    if isinstance(dtype, torch.dtype):
        return dtype
    if isinstance(dtype, str) and isinstance(getattr(torch, dtype, None), torch.dtype):
        return getattr(torch, dtype)
    raise ValueError(f"dtype must be a torch.dtype or its name (e.g. 'float32'), got {dtype!r}")


class CheckpointSeries:
    """The checkpoints of one run, ordered by step.

    ``CheckpointSeries(run_dir)`` discovers sub-directories named like checkpoints (see
    :func:`parse_checkpoint_name`); other sub-directories holding a ``config.json`` are included
    only when their metadata gives a step (else ignored with a warning). A ``run_dir`` that is
    itself a model directory becomes a one-element series. Hidden directories (in-progress atomic
    writes) are never discovered.

    Options (keyword-only, shared by every constructor):

    ``hash_weights`` (True): hash every checkpoint's weights now and flag duplicates; with False,
    hashes are computed lazily (:meth:`hash_weights`, :meth:`duplicates`, :meth:`iter_models`).
    ``step_priority`` ("metadata"): which wins when a checkpoint's name and its metadata
    (``checkpoint.json`` step, else ``trainer_state.json`` global_step) disagree; the metadata is
    written by the trainer next to the weights, names can be mislabeled. Either way a
    :class:`CheckpointWarning` names both values.
    ``log_dir`` (the run directory): where ``loss.jsonl`` / ``val.jsonl`` are read from.
    ``loss_window`` (10): ``train_loss_smoothed`` is the mean train loss over the logged steps
    in ``(step - loss_window, step]``.

    Broken checkpoints (missing or corrupt weights, unreadable config or metadata) are listed in
    :attr:`broken` with a reason and are not part of ``len``/iteration.
    """

    def __init__(self, run_dir: str | Path, *, hash_weights: bool = True,
                 step_priority: Literal["metadata", "name"] = "metadata",
                 log_dir: str | Path | None = None, loss_window: int = 10,
                 run: str | None = None) -> None:
        run_dir = Path(run_dir)
        if not run_dir.is_dir():
            raise FileNotFoundError(f"run directory {run_dir} does not exist or is not a directory")
        candidates = _discover(run_dir)
        if not candidates:
            raise CheckpointError(
                f"no checkpoints found in {run_dir}: expected sub-directories named checkpoint-N, "
                "step-N, stepN, stepN-tokens4B, step-N-2BT, or a model directory (config.json)")
        self._setup(candidates, run_dir=run_dir, run_name=run, log_dir=log_dir or run_dir,
                    hash_weights=hash_weights, step_priority=step_priority, loss_window=loss_window,
                    keep_order=False, default_run=run_dir.resolve().name)

    # -- constructors -----------------------------------------------------------------------

    @classmethod
    def from_paths(cls, paths: Sequence[str | Path], steps: Sequence[int | None] | None = None, *,
                   names: Sequence[str] | None = None, run: str | None = None,
                   hash_weights: bool = True, step_priority: Literal["metadata", "name"] = "metadata",
                   log_dir: str | Path | None = None, loss_window: int = 10) -> "CheckpointSeries":
        """A series from explicit checkpoint directories.

        ``steps`` (same length as ``paths``) overrides names and metadata. Without steps, a step
        comes from metadata or the directory name; the series is sorted by step when every
        checkpoint has one, and kept in the given order when none has (mixing raises).
        Loss logs are read only from ``log_dir`` when given.
        """
        if isinstance(paths, (str, Path)):
            raise TypeError("paths must be a sequence of checkpoint directories, not one path")
        paths = [Path(p) for p in paths]
        if not paths:
            raise ValueError("paths is empty")
        steps = list(steps) if steps is not None else [None] * len(paths)
        names = list(names) if names is not None else [p.name for p in paths]
        if len(steps) != len(paths) or len(names) != len(paths):
            raise ValueError(f"steps/names must have one entry per path ({len(paths)})")
        for s in steps:
            if s is not None:
                _check_int("steps[i]", s, minimum=0)
        candidates = [CheckpointInfo(name=n, path=p, step=s) for n, p, s in zip(names, paths, steps)]
        obj = cls.__new__(cls)
        obj._setup(candidates, run_dir=None, run_name=run, log_dir=log_dir, hash_weights=hash_weights,
                   step_priority=step_priority, loss_window=loss_window, keep_order=True,
                   default_run=_common_parent_name(paths))
        return obj

    @classmethod
    def from_hub(cls, repo_id: str, revisions: Sequence[str] | None = None, *,
                 cache_dir: str | Path | None = None, local_files_only: bool = False,
                 token: str | bool | None = None, hash_weights: bool = True,
                 step_priority: Literal["metadata", "name"] = "metadata",
                 loss_window: int = 10) -> "CheckpointSeries":
        """A series from revisions (branches/tags) of a Hub repository, e.g. Pythia's ``step1000``.

        Each revision's config, safetensors weights and tokenizer files are downloaded (or found
        in the cache with ``local_files_only=True``) with ``huggingface_hub.snapshot_download``;
        expect the disk cost of every listed revision. Steps and tokens are parsed from the
        revision names like directory names. ``revisions=None`` lists the repository's branches
        and keeps those named like checkpoints. A revision that fails to download is reported in
        :attr:`broken`.
        """
        from huggingface_hub import list_repo_refs, snapshot_download

        if revisions is None:
            refs = list_repo_refs(repo_id, token=token)
            revisions = [b.name for b in refs.branches if parse_checkpoint_name(b.name)]
            if not revisions:
                raise CheckpointError(f"{repo_id}: no branch is named like a checkpoint (e.g. step1000)")
        if isinstance(revisions, str):
            raise TypeError("revisions must be a sequence of revision names, not one string")
        candidates: list[CheckpointInfo] = []
        failed: list[CheckpointInfo] = []
        for rev in revisions:
            try:
                local = snapshot_download(
                    repo_id, revision=rev, cache_dir=None if cache_dir is None else str(cache_dir),
                    local_files_only=local_files_only, token=token,
                    allow_patterns=["*.json", "*.safetensors", "*.txt", "*.model", "tokenizer*"])
            except Exception as exc:  # network / missing revision: report, do not fail the series
                parsed = parse_checkpoint_name(rev)
                failed.append(CheckpointInfo(name=rev, path=Path(f"hf://{repo_id}@{rev}"), revision=rev,
                                             step=parsed.step if parsed else None, status="broken",
                                             reason=f"{repo_id}@{rev}: download failed ({exc})"))
                continue
            candidates.append(CheckpointInfo(name=rev, path=Path(local), revision=rev))
        obj = cls.__new__(cls)
        obj._setup(candidates, run_dir=None, run_name=repo_id, log_dir=None, hash_weights=hash_weights,
                   step_priority=step_priority, loss_window=loss_window, keep_order=True,
                   extra_broken=failed)
        return obj

    # -- setup ------------------------------------------------------------------------------

    def _setup(self, candidates: list[CheckpointInfo], *, run_dir: Path | None, run_name: str | None,
               log_dir: str | Path | None, hash_weights: bool, step_priority: str, loss_window: int,
               keep_order: bool, extra_broken: Sequence[CheckpointInfo] = (),
               default_run: str = "series") -> None:
        _check_choice("step_priority", step_priority, ("metadata", "name"))
        _check_int("loss_window", loss_window, minimum=1)
        if not isinstance(hash_weights, bool):
            raise ValueError(f"hash_weights must be a bool, got {hash_weights!r}")
        self.run_dir = run_dir
        self.log_dir = Path(log_dir) if log_dir is not None else None
        self.loss_window = loss_window
        self._loss_df: Any = None
        self._val_df: Any = None
        for info in candidates:
            _inspect(info, step_priority=step_priority)
        good = [c for c in candidates if c.ok]
        broken = [c for c in candidates if not c.ok] + list(extra_broken)
        good = _order(good, keep_order=keep_order)
        meta_runs = {str(c.meta["run"]) for c in good if c.meta.get("run")}
        self.run = run_name if run_name is not None else (
            meta_runs.pop() if len(meta_runs) == 1 else default_run)
        self._inherit_tokenizer(good)
        self._all: list[CheckpointInfo] = good + broken
        self._items: list[CheckpointInfo] = good
        self._join_logs()
        steps = [c.step for c in good if c.step is not None]
        dup_steps = sorted({s for s in steps if steps.count(s) > 1})
        if dup_steps:
            names = {s: [c.name for c in good if c.step == s] for s in dup_steps}
            warnings.warn(f"series {self.run}: several checkpoints claim the same step: {names}",
                          CheckpointWarning, stacklevel=3)
        if broken:
            warnings.warn(f"series {self.run}: {len(broken)} broken checkpoint(s) skipped: "
                          + "; ".join(c.reason or c.name for c in broken), CheckpointWarning,
                          stacklevel=3)
        if hash_weights:
            self.hash_weights()

    def _inherit_tokenizer(self, good: list[CheckpointInfo]) -> None:
        run_tok: Path | None = None
        if self.run_dir is not None:
            for cand in (self.run_dir, self.run_dir / "tokenizer"):
                if cand.is_dir() and has_tokenizer(cand):
                    run_tok = cand
                    break
        if run_tok is None:
            run_tok = next((c.tokenizer_path for c in good if c.tokenizer_path is not None), None)
        self.tokenizer_path = run_tok
        if run_tok is None:
            return
        run_hash = tokenizer_hash(run_tok)
        for c in good:
            if c.tokenizer_path is None:
                c.tokenizer_path, c.tokenizer_hash, c.tokenizer_inherited = run_tok, run_hash, True

    def _join_logs(self) -> None:
        if self.log_dir is None:
            return
        loss_path, val_path = self.log_dir / "loss.jsonl", self.log_dir / "val.jsonl"
        if loss_path.is_file():
            self._loss_df = load_loss_log(loss_path)
        if val_path.is_file():
            self._val_df = load_val_log(val_path)
        for info in self._items:
            if info.step is None:
                continue
            df = self._loss_df
            if df is not None and len(df):
                at = df[df["step"] == info.step]
                if len(at):
                    row = at.iloc[-1]
                    info.train_loss = float(row["loss"]) if "loss" in row and row["loss"] == row["loss"] else math.nan
                    info.train_loss_by_language = {
                        lang: float(row[f"loss_{lang}"]) for lang in df.attrs.get("languages", [])
                        if row[f"loss_{lang}"] == row[f"loss_{lang}"]}
                    if info.tokens is None and "tokens" in row and row["tokens"] == row["tokens"]:
                        info.tokens, info.tokens_source = int(row["tokens"]), "loss_log"
                window = df[(df["step"] > info.step - self.loss_window) & (df["step"] <= info.step)]
                if len(window) and "loss" in window:
                    info.train_loss_smoothed = float(window["loss"].mean())
            vdf = self._val_df
            if vdf is not None and len(vdf):
                for _, row in vdf[vdf["step"] == info.step].iterrows():
                    lang = str(row["language"])
                    if "loss" in row and row["loss"] == row["loss"]:
                        info.val_loss[lang] = float(row["loss"])
                    if "bpb" in row and row["bpb"] == row["bpb"]:
                        info.val_bpb[lang] = float(row["bpb"])

    # -- sequence protocol --------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._items)

    def __iter__(self) -> Iterator[CheckpointInfo]:
        return iter(self._items)

    def __getitem__(self, index: int | slice) -> Any:
        if isinstance(index, slice):
            return self._subset(self._items[index])
        return self._items[index]

    def __repr__(self) -> str:
        steps = self.steps
        span = f"steps {steps[0]}..{steps[-1]}" if steps and None not in steps else f"{len(self)} checkpoints"
        return (f"CheckpointSeries(run={self.run!r}, {len(self)} checkpoints, {span}, "
                f"{len(self.broken)} broken)")

    @property
    def steps(self) -> list[int | None]:
        """Steps of the usable checkpoints, in series order."""
        return [c.step for c in self._items]

    @property
    def broken(self) -> list[CheckpointInfo]:
        """Checkpoints that could not be used, each with ``path`` and ``reason``."""
        return [c for c in self._all if c.status == "broken"]

    def by_step(self, step: int) -> CheckpointInfo:
        """The (first) usable checkpoint at ``step``; KeyError naming the known steps otherwise."""
        for c in self._items:
            if c.step == step:
                return c
        raise KeyError(f"series {self.run}: no checkpoint at step {step}; steps are {self.steps}")

    def _subset(self, items: list[CheckpointInfo]) -> "CheckpointSeries":
        obj = self.__class__.__new__(self.__class__)
        obj.__dict__.update(self.__dict__)
        obj._items = list(items)
        keep = {id(c) for c in items}
        obj._all = list(items) + [c for c in self._all if c.status == "broken" and id(c) not in keep]
        return obj

    def select(self, *, steps: Iterable[int] | None = None, every: int | None = None,
               max_count: int | None = None) -> "CheckpointSeries":
        """A sub-series: exactly ``steps`` (KeyError for a missing one), and/or steps that are
        multiples of ``every``, then at most ``max_count`` checkpoints evenly spaced by position
        (first and last always kept). Broken checkpoints stay reported."""
        items = list(self._items)
        if steps is not None:
            wanted = list(steps)
            for s in wanted:
                _check_int("steps[i]", s, minimum=0)
            have = {c.step for c in items}
            missing = [s for s in wanted if s not in have]
            if missing:
                raise KeyError(f"series {self.run}: no checkpoint at step(s) {missing}; steps are {self.steps}")
            wanted_set = set(wanted)
            items = [c for c in items if c.step in wanted_set]
        if every is not None:
            _check_int("every", every, minimum=1)
            items = [c for c in items if c.step is not None and c.step % every == 0]
        if max_count is not None:
            _check_int("max_count", max_count, minimum=1)
            if len(items) > max_count:
                if max_count == 1:
                    idx = [len(items) - 1]
                else:
                    idx = sorted({round(i * (len(items) - 1) / (max_count - 1)) for i in range(max_count)})
                items = [items[i] for i in idx]
        return self._subset(items)

    # -- hashes, duplicates, tokenizers --------------------------------------------------------

    def hash_weights(self) -> list[list[CheckpointInfo]]:
        """Compute missing weight hashes (a failure marks the checkpoint broken) and mark duplicates.

        Returns :meth:`duplicates`.
        """
        newly_broken = []
        for c in self._items:
            if c.weight_hash is None:
                try:
                    c.weight_hash = weight_hash(c.weight_files)
                except (CheckpointError, OSError) as exc:
                    c.status, c.reason = "broken", str(exc)
                    newly_broken.append(c)
        if newly_broken:
            self._items = [c for c in self._items if c.ok]
            warnings.warn(f"series {self.run}: broken checkpoint(s) skipped: "
                          + "; ".join(str(c.reason) for c in newly_broken), CheckpointWarning, stacklevel=2)
        return self._mark_duplicates()

    def _mark_duplicates(self, *, warn: bool = True) -> list[list[CheckpointInfo]]:
        groups: dict[str, list[CheckpointInfo]] = {}
        for c in self._items:
            if c.weight_hash is not None:
                groups.setdefault(c.weight_hash, []).append(c)
        dups = [g for g in groups.values() if len(g) > 1]
        fresh = []
        for g in dups:
            for c in g[1:]:
                if c.status != "duplicate":
                    fresh.append(c)
                c.status, c.duplicate_of = "duplicate", g[0].name
        if fresh and warn:
            warnings.warn(
                f"series {self.run}: checkpoints with identical weights under different names: "
                + "; ".join(" = ".join(c.name for c in g) for g in dups
                            if any(c in fresh for c in g)), CheckpointWarning, stacklevel=3)
        return dups

    def duplicates(self) -> list[list[CheckpointInfo]]:
        """Groups (in series order) of checkpoints whose weights hash equal; hashes what is missing."""
        if any(c.weight_hash is None for c in self._items):
            return self.hash_weights()
        return self._mark_duplicates()

    def check_tokenizers(self, *, warn_only: bool = False) -> bool:
        """Check that every checkpoint uses the same tokenizer (file hash, and the ``tokenizer_hash``
        recorded in ``checkpoint.json`` when present).

        Raises :class:`TokenizerMismatchError` naming the differing checkpoints (or only warns
        with ``warn_only=True``); returns True when they all agree. Checkpoints without any
        tokenizer (and no run-level tokenizer to inherit) are reported too.
        """
        if not isinstance(warn_only, bool):
            raise ValueError(f"warn_only must be a bool, got {warn_only!r}")
        problems = []
        for label, key in (("tokenizer files", lambda c: c.tokenizer_hash),
                           ("checkpoint.json tokenizer_hash", lambda c: c.meta.get("tokenizer_hash"))):
            groups: dict[Any, list[str]] = {}
            for c in self._items:
                value = key(c)
                if value is None and label != "tokenizer files":
                    continue
                groups.setdefault(value, []).append(c.name)
            if len(groups) > 1:
                parts = [f"{'(none)' if h is None else str(h)[:12]}: {', '.join(names)}"
                         for h, names in groups.items()]
                problems.append(f"{label} differ -> " + " | ".join(parts))
        if not problems:
            return True
        msg = f"series {self.run}: tokenizer differs across checkpoints: " + "; ".join(problems)
        if warn_only:
            warnings.warn(msg, CheckpointWarning, stacklevel=2)
            return False
        raise TokenizerMismatchError(msg)

    def tokenizer(self, override: Any = None, *, required: bool = True) -> Any:
        """The series' tokenizer: the one place a tokenizer for a series is resolved.

        ``override`` wins: a tokenizer object is returned as is; a path is loaded with
        :func:`load_tokenizer_from` (a directory, or a ``tokenizer.json`` file). Otherwise the
        tokenizer files of the first usable checkpoint that has them are loaded, else the
        run-level tokenizer (``run_dir`` or ``run_dir/tokenizer``, see :attr:`tokenizer_path`).
        A fresh tokenizer is loaded on every call.

        When nothing provides a tokenizer, raises :class:`CheckpointError` naming the series and
        where it looked, or returns None with ``required=False`` (probes that read token ids only,
        like LAPE on a token store, need none). Tokenizer files that exist but cannot be loaded
        always raise :class:`CheckpointError` naming the directory.
        """
        if not isinstance(required, bool):
            raise ValueError(f"required must be a bool, got {required!r}")
        if override is not None:
            return load_tokenizer_from(override) if isinstance(override, (str, os.PathLike)) else override
        path = next((c.tokenizer_path for c in self._items if c.tokenizer_path), self.tokenizer_path)
        if path is None:
            if not required:
                return None
            where = [str(self.run_dir), str(self.run_dir / "tokenizer")] if self.run_dir is not None else []
            where += [str(c.path) for c in self._items[:3]] + (["..."] if len(self._items) > 3 else [])
            raise CheckpointError(
                f"series {self.run}: no tokenizer files ({', '.join(TOKENIZER_VOCAB_FILES[:3])}, ...) in "
                f"{', '.join(where) or 'any checkpoint'}; pass a tokenizer (object or directory)")
        return load_tokenizer_from(path)

    def load_tokenizer(self) -> Any:
        """Same as :meth:`tokenizer` with no override (kept for existing callers)."""
        return self.tokenizer()

    # -- tables -------------------------------------------------------------------------------

    def loss_log(self) -> "pd.DataFrame":
        """The run's ``loss.jsonl`` as a DataFrame (empty when there is none); see :func:`load_loss_log`."""
        import pandas as pd

        if self._loss_df is None:
            return pd.DataFrame({"step": pd.Series(dtype="int64"), "loss": pd.Series(dtype="float64")})
        return self._loss_df.copy()

    def val_log(self) -> "pd.DataFrame":
        """The run's ``val.jsonl`` as a DataFrame (empty when there is none)."""
        import pandas as pd

        if self._val_df is None:
            return pd.DataFrame({"step": pd.Series(dtype="int64"), "language": pd.Series(dtype=object),
                                 "loss": pd.Series(dtype="float64")})
        return self._val_df.copy()

    def to_dataframe(self) -> "pd.DataFrame":
        """One row per checkpoint (usable ones in series order, then broken ones)."""
        import pandas as pd

        rows = [c.to_row() for c in self._all]
        df = pd.DataFrame.from_records(rows)
        if df.empty:
            df = pd.DataFrame(columns=list(CheckpointInfo(name="", path=Path()).to_row()))
        df.insert(0, "run", self.run)
        return df

    # -- models -------------------------------------------------------------------------------

    def load(self, index: int = 0, *, dtype: torch.dtype | str = torch.float32, device: str = "cpu",
             check_lens: bool = True) -> Any:
        """Load one checkpoint with :func:`lensprobe.engine.adapters.load_model` (a fresh model and tokenizer)."""
        from lensprobe.engine.adapters import load_model

        info = self._items[index]
        return load_model(str(info.path), dtype=_as_dtype(dtype), device=str(device), check_lens=check_lens)

    def iter_models(self, *, dtype: torch.dtype | str = torch.float32, device: str | torch.device = "cpu",
                    prefetch: bool = True, check_lens: bool | Literal["first", "every"] = "first",
                    check_tokenizers: bool = True,
                    on_arch_change: Literal["error", "rebuild"] = "error",
                    skip_duplicates: bool = False) -> Iterator[tuple[CheckpointInfo, torch.nn.Module]]:
        """Yield ``(checkpoint, model)`` for every usable checkpoint with ONE resident model.

        The first checkpoint is loaded with :func:`lensprobe.engine.adapters.load_model` (building the
        architecture; the logit lens is verified when ``check_lens`` is True/"first"/"every");
        every later one is loaded into the same parameters with :func:`load_state_dict_in_place`
        (strict keys, tied embeddings re-tied; "every" re-verifies the lens each time). On CPU a
        parameter adopts the read tensor as its storage when the dtype matches (no copy), else
        values are cast and copied. The model object, its modules and Parameter objects are the
        same at every step (hooks registered once keep working): copy what you need before
        advancing.

        ``prefetch``: read the next checkpoint's tensors into memory (in ``dtype``; and hash them
        if needed) in a background thread while the caller works on the current one; costs one
        extra state dict of host memory. Without it, tensors are memory-mapped and read lazily.
        ``on_arch_change``: a checkpoint whose config differs from the resident one in anything
        but volatile keys raises :class:`ArchitectureMismatchError` ("error", the default: within
        one run the architecture is constant, so a difference means a foreign directory) or
        rebuilds the model with a warning ("rebuild"). Checkpoints whose files cannot be read
        are marked broken, warned about and skipped; tensors that do not fit the model raise
        :class:`StateDictMismatchError`. ``skip_duplicates`` skips checkpoints whose weights equal
        an earlier one's. ``check_tokenizers`` runs :meth:`check_tokenizers` first.
        """
        dtype = _as_dtype(dtype)
        device = str(device)
        for name, value in (("prefetch", prefetch), ("check_tokenizers", check_tokenizers),
                            ("skip_duplicates", skip_duplicates)):
            if not isinstance(value, bool):
                raise ValueError(f"{name} must be a bool, got {value!r}")
        _check_choice("check_lens", check_lens, (True, False, "first", "every"))
        _check_choice("on_arch_change", on_arch_change, ("error", "rebuild"))
        return self._iter_models(dtype=dtype, device=device, prefetch=prefetch, check_lens=check_lens,
                                 check_tokenizers=check_tokenizers, on_arch_change=on_arch_change,
                                 skip_duplicates=skip_duplicates)

    def _iter_models(self, *, dtype: torch.dtype, device: str, prefetch: bool, check_lens: Any,
                     check_tokenizers: bool, on_arch_change: str,
                     skip_duplicates: bool) -> Iterator[tuple[CheckpointInfo, torch.nn.Module]]:
        if check_tokenizers:
            self.check_tokenizers()
        todo = [c for c in self._items if not (skip_duplicates and c.status == "duplicate")]
        seen_hashes: dict[str, CheckpointInfo] = {c.weight_hash: c for c in self._items
                                                  if c.weight_hash is not None and c.status == "ok"}

        def read(info: CheckpointInfo) -> tuple[dict[str, torch.Tensor], dict[str, Any], str]:
            state = _read_state_dict(info.weight_files)  # memory-mapped: nothing read yet
            digest = info.weight_hash or _state_dict_hash(state, str(info.path))
            if prefetch:  # read the bytes now, in the background, into the model's dtype
                state = _materialize(state, dtype)
            return state, _architecture(info.path), digest

        executor = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="lensprobe-prefetch") \
            if prefetch else None
        pending: dict[int, concurrent.futures.Future] = {}
        model: torch.nn.Module | None = None
        resident_arch: dict[str, Any] | None = None
        try:
            for i, info in enumerate(todo):
                if skip_duplicates and info.status == "duplicate":
                    continue
                try:
                    state, arch, digest = pending.pop(i).result() if i in pending else read(info)
                except CheckpointError as exc:
                    self._mark_broken(info, str(exc))
                    continue
                finally:
                    if executor is not None and i + 1 < len(todo):
                        pending[i + 1] = executor.submit(read, todo[i + 1])
                if info.weight_hash is None:
                    info.weight_hash = digest
                    first = seen_hashes.get(digest)
                    if first is not None and first is not info:
                        info.status, info.duplicate_of = "duplicate", first.name
                        warnings.warn(f"series {self.run}: {info.name} has the same weights as "
                                      f"{first.name}", CheckpointWarning, stacklevel=2)
                        if skip_duplicates:
                            continue
                    else:
                        seen_hashes[digest] = info
                where = f"checkpoint {info.name} ({info.path})"
                if model is not None and arch != resident_arch:
                    diff = _diff_keys(resident_arch or {}, arch)
                    if on_arch_change == "error":
                        raise ArchitectureMismatchError(
                            f"{where}: config differs from the resident model's in {diff[:8]}; "
                            "pass on_arch_change='rebuild' to load it as a new model")
                    warnings.warn(f"{where}: architecture changed ({diff[:8]}); rebuilding the model",
                                  CheckpointWarning, stacklevel=2)
                    model = None
                if model is None:
                    del state
                    loaded = _load_model(info.path, dtype=dtype, device=device,
                                         check_lens=check_lens in (True, "first", "every"))
                    model, resident_arch = loaded.model, arch
                else:
                    # on CPU, tensors of the right dtype (prefetched copies, or private memory maps
                    # of the files, as from_pretrained uses) become the parameters' storage without
                    # a copy; otherwise they are cast/copied into the existing parameters
                    load_state_dict_in_place(model, state, where=where, share=device == "cpu")
                    del state
                    if check_lens == "every":
                        _verify_lens(model, where)
                yield info, model
        finally:
            for fut in pending.values():
                fut.cancel()
            if executor is not None:
                executor.shutdown(wait=True)

    def _mark_broken(self, info: CheckpointInfo, reason: str) -> None:
        info.status, info.reason = "broken", reason
        self._items = [c for c in self._items if c is not info]
        if info not in self._all:
            self._all.append(info)
        warnings.warn(f"series {self.run}: skipping broken checkpoint: {reason}", CheckpointWarning,
                      stacklevel=3)


# ----------------------------------------------------------------------------------------------
# discovery helpers


def _discover(run_dir: Path) -> list[CheckpointInfo]:
    named: list[CheckpointInfo] = []
    ignored: list[str] = []
    for sub in sorted(p for p in run_dir.iterdir() if p.is_dir() and not p.name.startswith(".")):
        if parse_checkpoint_name(sub.name) is not None:
            named.append(CheckpointInfo(name=sub.name, path=sub))
        elif (sub / "config.json").is_file():
            has_step = False
            try:
                meta = _read_meta(sub)
                has_step = meta.get("step") is not None or \
                    (meta.get("trainer_state") or {}).get("global_step") is not None
            except CheckpointError:
                pass
            if has_step:
                named.append(CheckpointInfo(name=sub.name, path=sub))
            else:
                ignored.append(sub.name)
    if ignored:
        warnings.warn(f"{run_dir}: ignoring model-like sub-directories without a step in their name "
                      f"or metadata: {ignored}", CheckpointWarning, stacklevel=3)
    if named:
        return named
    if (run_dir / "config.json").is_file():
        return [CheckpointInfo(name=run_dir.name, path=run_dir)]
    return []


def _order(items: list[CheckpointInfo], *, keep_order: bool) -> list[CheckpointInfo]:
    known = [c for c in items if c.step is not None]
    if len(known) == len(items):
        return sorted(items, key=lambda c: (c.step, c.name))  # stable
    if not known:
        return items
    unknown = [c.name for c in items if c.step is None]
    raise CheckpointError(
        f"cannot order the series: no step for {unknown} (name it checkpoint-N / stepN, add "
        "checkpoint.json with a 'step', or pass steps=...)")


def _common_parent_name(paths: Sequence[Path]) -> str:
    parents = {p.resolve().parent for p in paths}
    return parents.pop().name if len(parents) == 1 else "series"
