"""One checkpoint: :class:`CheckpointInfo` and how a checkpoint directory is inspected (metadata,
step, tokens, weight files, config, tokenizer); a checkpoint that cannot be used is marked broken."""
from __future__ import annotations

import json
import math
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from .errors import CheckpointError, CheckpointWarning
from .hashing import read_safetensors_header
from .names import ParsedName, parse_checkpoint_name
from .tokenizer import has_tokenizer, tokenizer_hash

__all__ = ["Status", "CheckpointInfo", "read_meta", "inspect_checkpoint"]

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


def read_meta(path: Path) -> dict[str, Any]:
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


def inspect_checkpoint(info: CheckpointInfo, *, step_priority: str) -> None:
    """Fill metadata, step, tokens, weight files, config and tokenizer; mark broken on failure."""
    path = info.path
    try:
        if not path.is_dir():
            raise CheckpointError(f"{path}: not a directory")
        meta = read_meta(path)
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

