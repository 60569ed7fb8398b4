"""Probe specs for the command line: ``NAME:key=value,key=value`` -> a configured probe.

    working_language:suite=php,exclude_last=1                 (Eq.1 on generated prompts: the paper's rule)
    working_language:suite=php,prompts=generated+all          (and the unfiltered *_all_prompts metrics)
    lape:languages=python+php,inputs=suite,tokens_per_language=20000
    lape:languages=python+php,inputs=tokens:data/tokens,split=val
    lape:languages=python+php,input_python=src/py,input_php=php.jsonl
    babel:splits=runs/babel/splits.json,languages=python+php,execute=false

Values: ``true``/``false`` for flags, numbers, text; a list joins items with ``+``. A value may
contain ``=`` and ``:`` but not ``,``. Each probe declares its keys and their types; an unknown
key, a missing required key or a value of the wrong type raises :class:`ProbeSpecError` naming it.

Third-party probes register a factory::

    register_probe("my_probe", lambda tokenizer=None, **opts: MyProbe(**opts),
                   options={"layers": int_list, "mode": str}, required=("mode",))
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

from lensprobe.engine.protocol import ModelProbe, Probe

__all__ = ["ProbeSpec", "ProbeSpecError", "parse_probe_spec", "make_probe", "register_probe", "registered_probes",
           "probe_help", "boolean", "text_list", "int_list"]


class ProbeSpecError(ValueError):
    """A probe spec that cannot be turned into a probe (names the spec and the key)."""


@dataclass(frozen=True)
class ProbeSpec:
    """A parsed spec: the probe name and its raw ``key -> value`` strings (in the given order)."""

    name: str
    options: dict[str, str] = field(default_factory=dict)
    text: str = ""


# -- value converters ---------------------------------------------------------------------------
def boolean(value: str) -> bool:
    """``true/false``, ``yes/no``, ``1/0`` (case-insensitive)."""
    low = value.strip().lower()
    if low in ("true", "yes", "1", "on"):
        return True
    if low in ("false", "no", "0", "off"):
        return False
    raise ValueError(f"expected true or false, got {value!r}")


def text_list(value: str) -> list[str]:
    """``a+b+c`` -> ``["a", "b", "c"]`` (empty items are errors)."""
    items = value.split("+")
    if any(not i.strip() for i in items):
        raise ValueError(f"expected items joined by '+', got {value!r}")
    return [i.strip() for i in items]


def int_list(value: str) -> list[int]:
    return [int(v) for v in text_list(value)]


def _converter_name(conv: Callable[[str], Any]) -> str:
    return {str: "text", int: "integer", float: "number", boolean: "true/false", text_list: "list (a+b)",
            int_list: "integer list (1+2)"}.get(conv, getattr(conv, "__name__", "value"))


# -- parsing ------------------------------------------------------------------------------------
def parse_probe_spec(spec: str) -> ProbeSpec:
    """Split ``NAME:key=value,...`` (the part after the first ``:`` is optional)."""
    if not isinstance(spec, str) or not spec.strip():
        raise ProbeSpecError(f"probe spec must be a non-empty string like 'working_language:suite=php', got {spec!r}")
    name, sep, rest = spec.strip().partition(":")
    name = name.strip()
    if not name or not all(ch.isalnum() or ch in "_-." for ch in name):
        raise ProbeSpecError(f"probe spec {spec!r}: bad probe name {name!r}")
    options: dict[str, str] = {}
    if sep and rest.strip():
        for part in rest.split(","):
            key, eq, value = part.partition("=")
            key = key.strip()
            if not eq or not key:
                raise ProbeSpecError(f"probe spec {spec!r}: {part!r} is not key=value")
            if key in options:
                raise ProbeSpecError(f"probe spec {spec!r}: key {key!r} given twice")
            options[key] = value.strip()
    return ProbeSpec(name, options, spec)


# -- registry -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Entry:
    factory: Callable[..., Probe | ModelProbe]
    options: Mapping[str, Callable[[str], Any]] | None
    required: tuple[str, ...]
    prefixes: Mapping[str, Callable[[str], Any]]
    help: str


_REGISTRY: dict[str, _Entry] = {}


def register_probe(name: str, factory: Callable[..., Probe | ModelProbe], *,
                   options: Mapping[str, Callable[[str], Any]] | None = None, required: Sequence[str] = (),
                   prefixes: Mapping[str, Callable[[str], Any]] | None = None, help: str = "",
                   replace: bool = False) -> None:
    """Make ``name`` usable in probe specs.

    ``factory(tokenizer=..., **options)`` returns the probe (``tokenizer`` is the series'
    tokenizer, for probes that tokenize text up front). ``options`` maps each accepted key to a
    converter from its string (``str``, ``int``, ``float``, :func:`boolean`, :func:`text_list`,
    ...); with ``options=None`` every key is passed as a string. ``prefixes`` accepts keys
    ``<prefix><anything>`` (e.g. ``input_php``) with that converter.
    """
    if not name or not all(ch.isalnum() or ch in "_-." for ch in name):
        raise ValueError(f"bad probe name {name!r}")
    _register_builtins()
    if name in _REGISTRY and not replace:
        raise ValueError(f"probe {name!r} is already registered (pass replace=True to override)")
    if not callable(factory):
        raise TypeError(f"factory for probe {name!r} is not callable")
    unknown = [k for k in required if options is not None and k not in options]
    if unknown:
        raise ValueError(f"required keys {unknown} of probe {name!r} are not among its options")
    _REGISTRY[name] = _Entry(factory, None if options is None else dict(options), tuple(required),
                             dict(prefixes or {}), help)


def registered_probes() -> list[str]:
    _register_builtins()
    return sorted(_REGISTRY)


def probe_help(name: str) -> str:
    """One paragraph: the probe's keys with their types (for ``--help`` and error messages)."""
    _register_builtins()
    entry = _REGISTRY[name]
    if entry.options is None:
        return f"{name}: {entry.help} (any key=value)"
    keys = [f"{k}{'*' if k in entry.required else ''} ({_converter_name(c)})" for k, c in entry.options.items()]
    keys += [f"{p}<name> ({_converter_name(c)})" for p, c in entry.prefixes.items()]
    return f"{name}: {entry.help}; keys: {', '.join(keys)} (* required)"


def make_probe(spec: str | ProbeSpec, *, tokenizer: Any = None) -> Probe | ModelProbe:
    """A configured probe from a spec string (see the module docstring)."""
    _register_builtins()
    parsed = spec if isinstance(spec, ProbeSpec) else parse_probe_spec(spec)
    where = f"probe spec {parsed.text or parsed.name!r}"
    entry = _REGISTRY.get(parsed.name)
    if entry is None:
        raise ProbeSpecError(f"{where}: unknown probe {parsed.name!r}; known: {', '.join(sorted(_REGISTRY))}")
    kwargs: dict[str, Any] = {}
    for key, raw in parsed.options.items():
        if entry.options is None:
            kwargs[key] = raw
            continue
        conv = entry.options.get(key)
        if conv is None:
            conv = next((c for p, c in entry.prefixes.items() if key.startswith(p) and len(key) > len(p)), None)
        if conv is None:
            allowed = sorted(entry.options) + [f"{p}<name>" for p in entry.prefixes]
            raise ProbeSpecError(f"{where}: unknown key {key!r} for probe {parsed.name!r}; "
                                 f"allowed: {', '.join(allowed)}")
        try:
            kwargs[key] = conv(raw)
        except (TypeError, ValueError) as exc:
            raise ProbeSpecError(f"{where}: key {key!r} expects {_converter_name(conv)}: {exc}") from None
    missing = [k for k in entry.required if k not in kwargs]
    if missing:
        raise ProbeSpecError(f"{where}: missing required key(s) {', '.join(missing)} for probe {parsed.name!r}")
    try:
        probe = entry.factory(tokenizer=tokenizer, **kwargs)
    except ProbeSpecError as exc:
        raise ProbeSpecError(f"{where}: {exc}") from exc
    except (ValueError, TypeError, KeyError, FileNotFoundError) as exc:
        msg = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        raise ProbeSpecError(f"{where}: {msg}") from exc
    if not isinstance(probe, (Probe, ModelProbe)):
        raise ProbeSpecError(f"{where}: factory returned {type(probe).__name__}, not a Probe or ModelProbe")
    return probe


# -- built-in probes ----------------------------------------------------------------------------
def _working_language(*, tokenizer: Any = None, suite: str, suites_dir: str | None = None, **kwargs: Any):
    from lensprobe.probes.working_language import WorkingLanguageProbe
    from lensprobe.suites import load_suite

    return WorkingLanguageProbe(load_suite(suite, search_path=[suites_dir] if suites_dir else None), **kwargs)


_LAPE_INPUT_KEYS = ("tokens_per_language", "seq_len", "split", "suite_seed")


def _lape(*, tokenizer: Any = None, languages: list[str], inputs: str | None = None, **kwargs: Any):
    from lensprobe.lape.inputs import resolve_inputs
    from lensprobe.probes.lape import LapeProbe

    per_language = {k[len("input_"):]: kwargs.pop(k) for k in list(kwargs) if k.startswith("input_")}
    unknown = sorted(set(per_language) - set(languages))
    if unknown:
        raise ProbeSpecError(f"input_{unknown[0]}: {unknown[0]!r} is not one of languages={'+'.join(languages)}")
    if inputs is None and set(per_language) != set(languages):
        missing = [lang for lang in languages if lang not in per_language]
        raise ProbeSpecError(f"no LAPE inputs for {', '.join(missing)}: give inputs=SOURCE (suite, a directory, "
                             "a .jsonl file, tokens:STORE_DIR) or input_<language>=SOURCE")
    input_kwargs = {k: kwargs.pop(k) for k in _LAPE_INPUT_KEYS if k in kwargs}
    if per_language:
        source: Any = {lang: per_language.get(lang, inputs) for lang in languages}
    else:
        source = inputs
    pad = getattr(tokenizer, "pad_token_id", None)
    if pad is not None:
        kwargs.setdefault("pad_id", int(pad))
    resolved = resolve_inputs(source, languages=languages, tokenizer=tokenizer, **input_kwargs)
    return LapeProbe(resolved, **kwargs)


def _babel(*, tokenizer: Any = None, splits: str, **kwargs: Any):
    from lensprobe.babel.evaluation import BabelProbe

    return BabelProbe(splits, **kwargs)


_BUILTINS_DONE = False


def _builtin(name: str, factory: Callable[..., Any], **kwargs: Any) -> None:
    if name not in _REGISTRY:  # a probe registered earlier under this name wins
        register_probe(name, factory, **kwargs)


def _register_builtins() -> None:
    global _BUILTINS_DONE
    if _BUILTINS_DONE:
        return
    _BUILTINS_DONE = True
    _builtin("working_language", _working_language, required=("suite",),
                   help="logit-lens working language (Eq.1) over an identifier suite; prompts=generated "
                        "(default, the paper's rule: only prompts whose model generates the identifier), "
                        "all (unfiltered, metrics *_all_prompts) or generated+all",
                   options={"suite": str, "suites_dir": str, "seed": int, "limit": int, "identifiers": text_list,
                            "exclude_last": int, "prompts": text_list, "batch_size": int,
                            "add_bos": boolean, "padding_side": str})
    _builtin("lape", _lape, required=("languages",),
                   help="LAPE language-specific neurons",
                   options={"languages": text_list, "inputs": str, "tokens_per_language": int, "seq_len": int,
                            "split": str, "suite_seed": int, "batch_size": int, "n_groups": int,
                            "padding_side": str, "top_rate": float, "filter_rate": float,
                            "activation_bar_ratio": float, "null_permutations": int, "null_seed": int,
                            "split_half": boolean},
                   prefixes={"input_": str})
    _builtin("babel", _babel, required=("splits",),
                   help="synthetic Babel benchmark: greedy body completion, line accuracy / exact match / pass@1",
                   options={"splits": str, "languages": text_list, "split_names": text_list, "target": str,
                            "execute": boolean, "batch_size": int, "n_boot": int, "seed": int})
