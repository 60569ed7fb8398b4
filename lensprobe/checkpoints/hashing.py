"""Weight identity: safetensors header validation and a content hash of a checkpoint's tensors.

The hash is persisted (the sweep's resume key includes it): its bytes must never change
(docs/checkpoints.md, "Weight hashes"). The pass that hashes every tensor also counts its
non-finite values (NaN, +-inf) in floating tensors, so a checkpoint with a NaN weight is caught
without reading it twice (docs/checkpoints.md, "Broken checkpoints").
"""
from __future__ import annotations

import hashlib
import json
import math
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from .errors import CheckpointError

__all__ = ["read_safetensors_header", "weight_hash", "scan_weights", "WeightScan", "state_dict_hash",
           "nonfinite_tensors", "describe_nonfinite"]

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
# floating safetensors dtypes whose values are checked for NaN / inf while hashing (numpy: fast enough
# to add little to the hash's own cost; bfloat16 by its exponent bits, all ones for NaN and inf)
_ST_FLOAT: dict[str, str] = {"F16": "float16", "BF16": "bfloat16", "F32": "float32", "F64": "float64"}


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


@dataclass(frozen=True)
class WeightScan:
    """What one read of a checkpoint's tensors gives: the :func:`weight_hash` and, per floating
    tensor holding any, the number of non-finite values (NaN, +-inf)."""

    hash: str
    nonfinite: dict[str, int] = field(default_factory=dict)
    sizes: dict[str, int] = field(default_factory=dict)


def describe_nonfinite(nonfinite: dict[str, int], sizes: dict[str, int] | None = None) -> str:
    """``tensor 'a' has 3 NaN/inf values (of 1024), and 2 more tensors ('b', 'c')``."""
    names = sorted(nonfinite)
    first = names[0]
    of = f" (of {sizes[first]})" if sizes and first in sizes else ""
    text = f"tensor {first!r} has {nonfinite[first]} NaN/inf value(s){of}"
    rest = names[1:]
    if rest:
        shown = ", ".join(repr(n) for n in rest[:3]) + (", ..." if len(rest) > 3 else "")
        text += f", and {len(rest)} more tensor(s) ({shown})"
    return text


def _count_nonfinite(raw: memoryview, dtype: str) -> int:
    if dtype == "bfloat16":
        exponent = np.frombuffer(raw, dtype="<u2") & np.uint16(0x7F80)
        bad = exponent == np.uint16(0x7F80)
    else:
        bad = ~np.isfinite(np.frombuffer(raw, dtype=np.dtype(dtype).newbyteorder("<")))
    return int(np.count_nonzero(bad)) if bad.any() else 0


def _read_full(fh: Any, view: memoryview, n: int, file: Path, name: str) -> None:
    got = 0
    while got < n:
        k = fh.readinto(view[got:n])
        if not k:
            raise CheckpointError(f"{file}: truncated while reading tensor {name!r}")
        got += k


def scan_weights(files: Sequence[str | Path]) -> WeightScan:
    """Read a checkpoint's safetensors ``files`` once: the :func:`weight_hash` and the non-finite
    value counts of its floating tensors (F16, BF16, F32, F64)."""
    files = [Path(f) for f in files]
    if not files:
        raise CheckpointError("weight_hash: no safetensors files given")
    entries: list[tuple[str, str, list[int], str]] = []
    nonfinite: dict[str, int] = {}
    sizes: dict[str, int] = {}
    buf = bytearray(_CHUNK)
    view = memoryview(buf)
    for file in files:
        header, start = read_safetensors_header(file)
        with open(file, "rb", buffering=0) as fh:
            for name, info in sorted(header.items(), key=lambda kv: kv[1]["data_offsets"][0]):
                begin, end = info["data_offsets"]
                fh.seek(start + begin)
                h = _digest()
                fdtype = _ST_FLOAT.get(info["dtype"])
                bad = 0
                remaining = end - begin
                while remaining:
                    n = min(remaining, _CHUNK)  # a multiple of the item size: whole values per chunk
                    _read_full(fh, view, n, file, name)
                    h.update(view[:n])
                    if fdtype is not None:
                        bad += _count_nonfinite(view[:n], fdtype)
                    remaining -= n
                if bad:
                    nonfinite[name] = bad
                    sizes[name] = int(math.prod(info["shape"]))
                entries.append((name, info["dtype"], info["shape"], h.hexdigest()))
    return WeightScan(_combine(entries, str(files[0].parent)), nonfinite, sizes)


def weight_hash(files: Sequence[str | Path]) -> str:
    """Content hash of the tensors in safetensors ``files`` (one checkpoint, all shards).

    Each tensor contributes ``(name, dtype, shape, blake2b(raw bytes))``; the tensors are combined
    sorted by name, so the hash ignores shard layout, tensor order and the ``__metadata__`` block,
    but changes with any weight byte, dtype (a bf16 copy of fp32 weights hashes differently) or
    tensor name. Files are streamed in 8 MiB chunks; 32 hex characters (128 bits).
    :func:`scan_weights` gives the same hash and the non-finite counts.
    """
    return scan_weights(files).hash


def state_dict_hash(state_dict: dict[str, torch.Tensor], where: str) -> str:
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



def nonfinite_tensors(state_dict: dict[str, torch.Tensor]) -> tuple[dict[str, int], dict[str, int]]:
    """Per floating tensor of ``state_dict`` holding any, its number of NaN/inf values; and the sizes."""
    counts: dict[str, int] = {}
    sizes: dict[str, int] = {}
    for name, t in state_dict.items():
        if t.is_floating_point() and t.numel():
            finite = torch.isfinite(t)
            if not bool(finite.all()):
                counts[name] = int(finite.numel() - finite.sum())
                sizes[name] = int(t.numel())
    return counts, sizes
