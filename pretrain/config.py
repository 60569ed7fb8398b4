"""Pre-training configuration: nested dataclasses, recipes, ``--set`` overrides and validation.

A config has the sections ``run, data, tokenizer, model, optim, snapshots, resume`` plus the
scalars ``precision, seed, threads``. It is built from a recipe (a YAML preset in
``pretrain/recipes/`` found by name, or any YAML file given by path), updated with
``section.key=value`` overrides, and validated before anything is trained: an unknown key, a value
of the wrong type or an impossible setting raises :class:`ConfigError` naming the field, e.g.
``optim.lr: expected a float, got 'fast'``.
"""
from __future__ import annotations

import copy
import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Union

import yaml

from lensprobe.languages import LANGUAGES
from lensprobe.mixture_file import load_mixture_file
from lensprobe.token_counts import parse_token_count

from .corpora import CORPUS_PLUGINS, corpus_kinds, open_corpus

RECIPES_DIR = Path(__file__).with_name("recipes")


class ConfigError(ValueError):
    """A bad configuration; the message starts with the offending field (``optim.lr: ...``)."""


# ---------------------------------------------------------------------------------- sections
@dataclass
class RunConfig:
    name: str = "run"
    recipe: str = ""                    # filled in from the recipe name or path
    notes: str = ""


@dataclass
class DataConfig:
    corpus: Any = "embedded"             # "embedded" | {"kind": "files"|"jsonl"|"parquet"|"hf_disk", "path": ...}
    languages: list[str] = field(default_factory=lambda: ["python"])
    tokens: dict[str, Any] = field(default_factory=dict)   # training budget per language ("100M" ok)
    mixture: str | None = None           # mixture file (language -> tokens); replaces ``tokens``
    context: int = 256
    validation_tokens: int = 16_384      # held-out tokens per language (val.jsonl)
    max_epochs: float = 4.0              # repetition cap: budget <= max_epochs x available tokens
    filters: Any = None                  # passed to pretrain.tokens.tokenize_corpus


@dataclass
class TokenizerConfig:
    path: str | None = None              # an existing tokenizer (directory or tokenizer.json)
    vocab_size: int = 2048               # used when training a tokenizer on the corpus
    sample_bytes_per_language: int = 2_000_000


@dataclass
class ModelConfig:
    arch: str = "gpt2"                   # "gpt2" | "llama"
    size: str | None = None              # a preset of pretrain.models.SIZES ("tiny", "124M", "1.3B", ...)
    n_layer: int | None = None
    n_embd: int | None = None
    n_head: int | None = None
    n_inner: int | None = None           # MLP width (default 4 x n_embd for gpt2, ~8/3 for llama)
    tie: bool = True                     # tie input embedding and unembedding
    dropout: float = 0.0
    init_from: str | None = None         # continual pre-training: start from this checkpoint's weights


@dataclass
class OptimConfig:
    lr: float = 1e-3
    min_lr_ratio: float = 0.1            # cosine decays to lr x min_lr_ratio
    betas: list[float] = field(default_factory=lambda: [0.9, 0.95])
    weight_decay: float = 0.1
    warmup: int = 50
    schedule: str = "cosine"             # "cosine" | "constant"
    clip: float = 1.0                    # gradient-norm clip (0 disables)
    batch_size: int = 16                 # GLOBAL sequences per optimizer step (all processes, all micro-steps)
    grad_accum: int = 1
    steps: int | None = None             # default: derived from the token budgets


@dataclass
class SnapshotConfig:
    schedule: str = "pythia"             # "pythia" (0,1,2,4,...,log_max then every K) | "every" | "list"
    every: int = 100
    log_max: int = 512
    steps: list[int] = field(default_factory=list)   # extra (or, for "list", the only) snapshot steps
    val_max_tokens: int | None = None    # cap on validation tokens evaluated per language


@dataclass
class ResumeConfig:
    every: int = 50                      # save resume state every N optimizer steps (and on SIGTERM)
    keep: int = 2


@dataclass
class PretrainConfig:
    run: RunConfig = field(default_factory=RunConfig)
    data: DataConfig = field(default_factory=DataConfig)
    tokenizer: TokenizerConfig = field(default_factory=TokenizerConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    snapshots: SnapshotConfig = field(default_factory=SnapshotConfig)
    resume: ResumeConfig = field(default_factory=ResumeConfig)
    precision: str = "auto"              # "auto" (bf16 on GPU, fp32 on CPU) | "bf16" | "fp32"
    seed: int = 0
    threads: int | None = None           # torch intra-op threads (set for bitwise CPU determinism)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)


#: fields whose change does not alter the trained weights (allowed when resuming a run)
HARMLESS_FIELDS = {"run.notes", "threads", "resume.every", "resume.keep", "snapshots.val_max_tokens"}


# ---------------------------------------------------------------------------------- parsing
def _type_name(tp: Any) -> str:
    names = {int: "an int", float: "a float", str: "a string", bool: "a bool"}
    if tp in names:
        return names[tp]
    origin = typing.get_origin(tp)
    if origin is list:
        return "a list"
    if origin is dict:
        return "a mapping"
    return str(tp)


def _coerce(value: Any, tp: Any, where: str) -> Any:
    """Check ``value`` against the annotation ``tp`` (ints are accepted for floats)."""
    origin = typing.get_origin(tp)
    if tp is Any:
        return value
    if origin in (Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, where)
            except ConfigError as exc:
                errors.append(exc)
        raise errors[0]
    if origin is list:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        (item,) = typing.get_args(tp)
        return [_coerce(v, item, f"{where}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        _, vt = typing.get_args(tp)
        return {str(k): _coerce(v, vt, f"{where}.{k}") for k, v in value.items()}
    if tp is float:
        if isinstance(value, str):   # YAML 1.1 reads "3e-4" as a string
            try:
                return float(value)
            except ValueError:
                pass
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where}: expected a float, got {value!r}")
        return float(value)
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, float) and value.is_integer():
                return int(value)
            raise ConfigError(f"{where}: expected an int, got {value!r}")
        return value
    if tp in (str, bool):
        if not isinstance(value, tp):
            raise ConfigError(f"{where}: expected {_type_name(tp)}, got {value!r}")
        return value
    raise TypeError(f"unsupported annotation {tp!r} at {where}")  # pragma: no cover


def _build(cls: type, data: Any, where: str) -> Any:
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{where or 'config'}: expected a mapping, got {data!r}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        key = f"{where}.{unknown[0]}" if where else unknown[0]
        raise ConfigError(f"{key}: unknown key (known: {', '.join(sorted(names))})")
    kwargs = {}
    for name, value in data.items():
        key = f"{where}.{name}" if where else name
        tp = hints[name]
        if dataclasses.is_dataclass(tp):
            kwargs[name] = _build(tp, value, key)
        else:
            kwargs[name] = _coerce(value, tp, key)
    return cls(**kwargs)


def from_dict(data: dict[str, Any]) -> PretrainConfig:
    """Build and validate a config from a nested mapping."""
    cfg = _build(PretrainConfig, copy.deepcopy(data), "")
    validate(cfg)
    return cfg


# ---------------------------------------------------------------------------------- recipes
#: directories searched for ``<name>.yaml`` recipes (later entries win); see :func:`register_recipe_dir`
RECIPE_DIRS: list[Path] = [RECIPES_DIR]


def register_recipe_dir(path: str | Path) -> None:
    """Make every ``<name>.yaml`` in ``path`` available as recipe ``name`` (other packages' recipes)."""
    path = Path(path)
    if not path.is_dir():
        raise ConfigError(f"recipe directory {str(path)!r} does not exist")
    if path not in RECIPE_DIRS:
        RECIPE_DIRS.append(path)


def available_recipes() -> dict[str, Path]:
    """Recipes by name: every ``pretrain/recipes/<name>.yaml`` plus registered directories."""
    found: dict[str, Path] = {}
    for directory in RECIPE_DIRS:
        found.update({p.stem: p for p in sorted(directory.glob("*.yaml"))})
    return dict(sorted(found.items()))


def recipe_path(recipe: str | Path) -> Path:
    """Resolve a recipe name (built-in) or a path to a YAML file."""
    path = Path(recipe)
    if path.suffix in (".yaml", ".yml") or path.exists():
        if not path.is_file():
            raise ConfigError(f"recipe: no such file {str(path)!r}")
        return path
    builtin = available_recipes()
    if str(recipe) not in builtin:
        raise ConfigError(f"recipe: unknown recipe {str(recipe)!r}; built-in: {', '.join(builtin)}"
                          " (or give a path to a YAML file)")
    return builtin[str(recipe)]


def _parse_value(text: str) -> Any:
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def apply_overrides(data: dict[str, Any], overrides: list[str] | None) -> dict[str, Any]:
    """Apply ``section.key=value`` strings (values parsed as YAML) to a nested mapping."""
    data = copy.deepcopy(data)
    for item in overrides or []:
        if "=" not in item:
            raise ConfigError(f"--set {item!r}: expected section.key=value")
        dotted, raw = item.split("=", 1)
        keys = [k for k in dotted.strip().split(".") if k]
        if not keys:
            raise ConfigError(f"--set {item!r}: empty key")
        node = data
        for key in keys[:-1]:
            child = node.get(key)
            if not isinstance(child, dict):   # a scalar (e.g. corpus: embedded) becomes a section
                child = node[key] = {}
            node = child
        node[keys[-1]] = _parse_value(raw)
    return data


def load_config(recipe: str | Path, *, overrides: list[str] | None = None,
                mixture: str | Path | None = None) -> PretrainConfig:
    """Load a recipe (name or path), apply overrides and an optional mixture file; validate."""
    path = recipe_path(recipe)
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"recipe {path}: invalid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"recipe {path}: expected a mapping at the top level")
    data = apply_overrides(data, overrides)
    if mixture is not None:
        data.setdefault("data", {})["mixture"] = str(mixture)
    data.setdefault("run", {})
    if isinstance(data["run"], dict):
        data["run"].setdefault("recipe", path.stem if path.parent in RECIPE_DIRS else str(path))
    return from_dict(data)


# ---------------------------------------------------------------------------------- validation
def parse_budget(value: Any, where: str) -> int:
    """A positive whole token count (:func:`lensprobe.token_counts.parse_token_count`: ints or strings
    like ``"100M"``, ``"5B"``, ``"20k"``)."""
    try:
        n = parse_token_count(value)
    except ValueError as exc:
        raise ConfigError(f"{where}: expected a token count like 100M ({exc})") from None
    if n <= 0:
        raise ConfigError(f"{where}: token count must be positive, got {value!r}")
    return n


def _check(cond: bool, message: str) -> None:
    if not cond:
        raise ConfigError(message)


def validate(cfg: PretrainConfig) -> None:
    """Semantic checks that do not need the data (types are checked while parsing)."""
    from .models import SIZES

    d, o, m, s = cfg.data, cfg.optim, cfg.model, cfg.snapshots
    _check(bool(d.languages), "data.languages: at least one language is required")
    for i, lang in enumerate(d.languages):
        _check(lang in LANGUAGES, f"data.languages[{i}]: unknown language {lang!r}; known: {', '.join(LANGUAGES)}")
    _check(len(set(d.languages)) == len(d.languages), "data.languages: duplicate language")
    if d.mixture is not None:
        _check(Path(d.mixture).is_file(), f"data.mixture: no such file {d.mixture!r}")
    else:
        for lang, value in d.tokens.items():
            _check(lang in d.languages, f"data.tokens.{lang}: language not in data.languages {d.languages}")
            parse_budget(value, f"data.tokens.{lang}")
        _check(bool(d.tokens), "data.tokens: give a token budget per language (or data.mixture)")
    _check(d.context >= 2, f"data.context: must be >= 2, got {d.context}")
    _check(d.validation_tokens >= 0, f"data.validation_tokens: must be >= 0, got {d.validation_tokens}")
    _check(d.max_epochs > 0, f"data.max_epochs: must be > 0, got {d.max_epochs}")
    corpus = d.corpus
    if isinstance(corpus, dict):
        kind = corpus.get("kind")
        _check(kind in corpus_kinds(), f"data.corpus.kind: expected {'|'.join(corpus_kinds())}, got {kind!r}")
        if kind in CORPUS_PLUGINS:  # build it now: unknown fields, splits or languages fail before training
            try:
                open_corpus(corpus, languages=d.languages)
            except (ValueError, TypeError) as exc:
                raise ConfigError(f"data.corpus: {exc}") from exc
        elif kind != "embedded":
            path = corpus.get("path")
            _check(isinstance(path, str) and bool(path), "data.corpus.path: required for kind " + repr(kind))
            _check(Path(path).exists(), f"data.corpus.path: no such file or directory {path!r}")
    elif isinstance(corpus, str):
        _check(corpus == "embedded" or Path(corpus).exists(),
               f"data.corpus: expected 'embedded', a corpus mapping or an existing path, got {corpus!r}")
    else:
        raise ConfigError(f"data.corpus: expected a string or a mapping, got {corpus!r}")

    if cfg.tokenizer.path is not None:
        _check(Path(cfg.tokenizer.path).exists(), f"tokenizer.path: no such file or directory {cfg.tokenizer.path!r}")
    _check(cfg.tokenizer.vocab_size >= 64, f"tokenizer.vocab_size: must be >= 64, got {cfg.tokenizer.vocab_size}")

    _check(m.arch in ("gpt2", "llama"), f"model.arch: expected 'gpt2' or 'llama', got {m.arch!r}")
    if m.init_from is not None:
        _check((Path(m.init_from) / "config.json").is_file(),
               f"model.init_from: {m.init_from!r} is not a checkpoint directory (no config.json)")
    else:
        if m.size is not None:
            _check(m.size in SIZES, f"model.size: unknown size {m.size!r}; known: {', '.join(SIZES)}")
            preset = SIZES[m.size]
            for key in ("n_layer", "n_embd", "n_head"):
                if getattr(m, key) is None:
                    setattr(m, key, preset[key])
        for key in ("n_layer", "n_embd", "n_head"):
            value = getattr(m, key)
            _check(value is not None, f"model.{key}: required (or give model.size, or model.init_from "
                                         "to continue from a checkpoint)")
            _check(value > 0, f"model.{key}: must be positive, got {value}")
        _check(m.n_embd % m.n_head == 0, f"model.n_head: n_embd={m.n_embd} is not divisible by n_head={m.n_head}")
    _check(0.0 <= m.dropout < 1.0, f"model.dropout: must be in [0, 1), got {m.dropout}")

    _check(o.lr > 0, f"optim.lr: must be positive, got {o.lr}")
    _check(0.0 <= o.min_lr_ratio <= 1.0, f"optim.min_lr_ratio: must be in [0, 1], got {o.min_lr_ratio}")
    _check(len(o.betas) == 2 and all(0 <= b < 1 for b in o.betas),
           f"optim.betas: expected two floats in [0, 1), got {o.betas}")
    _check(o.weight_decay >= 0, f"optim.weight_decay: must be >= 0, got {o.weight_decay}")
    _check(o.warmup >= 0, f"optim.warmup: must be >= 0, got {o.warmup}")
    _check(o.schedule in ("cosine", "constant"), f"optim.schedule: expected 'cosine' or 'constant', got {o.schedule!r}")
    _check(o.clip >= 0, f"optim.clip: must be >= 0, got {o.clip}")
    _check(o.batch_size > 0, f"optim.batch_size: must be positive, got {o.batch_size}")
    _check(o.grad_accum > 0, f"optim.grad_accum: must be positive, got {o.grad_accum}")
    _check(o.batch_size % o.grad_accum == 0,
           f"optim.batch_size: {o.batch_size} is not divisible by optim.grad_accum={o.grad_accum}")
    if o.steps is not None:
        _check(o.steps > 0, f"optim.steps: must be positive, got {o.steps}")

    _check(s.schedule in ("pythia", "every", "list"), f"snapshots.schedule: expected pythia|every|list, got {s.schedule!r}")
    _check(s.every > 0, f"snapshots.every: must be positive, got {s.every}")
    _check(all(step >= 0 for step in s.steps), "snapshots.steps: steps must be >= 0")
    _check(cfg.resume.every > 0, f"resume.every: must be positive, got {cfg.resume.every}")
    _check(cfg.resume.keep >= 1, f"resume.keep: must be >= 1, got {cfg.resume.keep}")
    _check(cfg.precision in ("auto", "bf16", "fp32"), f"precision: expected auto|bf16|fp32, got {cfg.precision!r}")
    if cfg.threads is not None:
        _check(cfg.threads > 0, f"threads: must be positive, got {cfg.threads}")


def budgets(cfg: PretrainConfig) -> dict[str, int]:
    """Training tokens per language, from ``data.tokens`` or the mixture file."""
    if cfg.data.mixture is not None:
        return _mixture_budgets(cfg)
    return {lang: parse_budget(v, f"data.tokens.{lang}") for lang, v in cfg.data.tokens.items()}


def _mixture_budgets(cfg: PretrainConfig) -> dict[str, int]:
    path = cfg.data.mixture
    try:
        tokens = load_mixture_file(path)
    except (ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"data.mixture ({path}): {exc}") from exc
    for lang in tokens:
        _check(lang in cfg.data.languages,
               f"data.mixture ({path}): language {lang!r} is not in data.languages {cfg.data.languages}")
    return dict(tokens)


def diff(old: dict[str, Any], new: dict[str, Any], prefix: str = "") -> list[str]:
    """Dotted names of the fields that differ between two config mappings."""
    out = []
    for key in sorted(set(old) | set(new)):
        name = f"{prefix}{key}"
        a, b = old.get(key), new.get(key)
        if isinstance(a, dict) and isinstance(b, dict) and prefix.count(".") < 1:
            out += diff(a, b, name + ".")
        elif a != b:
            out.append(name)
    return out


def differences_that_matter(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    return [name for name in diff(old, new) if name not in HARMLESS_FIELDS]
