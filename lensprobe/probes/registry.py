"""Probe specs for the command line: ``NAME:key=value,key=value`` -> a configured probe.

    working_language:suite=php,exclude_last=1                 (Eq.1 on generated prompts: the paper's rule)
    working_language:suite=php,prompts=generated+all          (and the unfiltered *_all_prompts metrics)
    lape:languages=python+php,inputs=suite,tokens_per_language=20000
    lape:languages=python+php,inputs=tokens:data/tokens,split=val
    lape:languages=python+php,input_python=src/py,input_php=php.jsonl
    babel:splits=runs/babel/splits.json,languages=python+php,execute=false
    functional:problems=humaneval-php.jsonl,family=multipl-e,ks=1,max_new_tokens=128

Values: ``true``/``false`` for flags, numbers, text; a list joins items with ``+``. A value may
contain ``=`` and ``:`` but not ``,``. An unknown key, a missing required key or a value of the
wrong type raises :class:`ProbeSpecError` naming it.

A probe's keys are the parameters of whatever builds it — its class's ``__init__`` or a factory
function: names and defaults from the signature, types from the type hints (``str``, ``int``,
``float``, ``bool``, ``Literal``, sequences of them; ``X | None``; in a union the first type a
spec can give, a sequence before a single value), descriptions from the docstring's ``Args:``
section. Parameters whose type a spec cannot give (e.g. a :class:`~lensprobe.lape.LapeInputs`)
need a default and are left out; a ``tokenizer`` parameter receives the series' tokenizer.
A probe module registers its probe with the :func:`register_probe` decorator::

    @register_probe
    class MyProbe(Probe):
        name = "my_probe"

        def __init__(self, *, layers: Sequence[int] = (1,), mode: str = "mean"): ...

The registry imports every module of the :mod:`lensprobe.probes` package and every entry point
of the ``lensprobe.probes`` group (third-party packages: the entry point names a module that
registers its probes, or a probe class / factory registered under the entry point's name) the
first time it is asked for a probe. See ``docs/sweep.md``.
"""
from __future__ import annotations

import collections.abc
import importlib
import inspect
import os
import pkgutil
import re
import types
import typing
import warnings
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any, Callable, Literal, Mapping, TypeVar, Union

from lensprobe.engine.protocol import ModelProbe, Probe

__all__ = ["ProbeSpec", "ProbeSpecError", "ProbeOption", "parse_probe_spec", "make_probe", "register_probe",
           "registered_probes", "probe_options", "probe_help", "boolean", "text_list", "int_list", "float_list",
           "ENTRY_POINT_GROUP"]

#: entry-point group through which other packages add probes
ENTRY_POINT_GROUP = "lensprobe.probes"

#: the parameter that receives the series' tokenizer instead of a spec value
TOKENIZER_PARAMETER = "tokenizer"


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
    """``1+2`` -> ``[1, 2]``."""
    return [int(v) for v in text_list(value)]


def float_list(value: str) -> list[float]:
    """``0.1+0.5`` -> ``[0.1, 0.5]``."""
    return [float(v) for v in text_list(value)]


@dataclass(frozen=True)
class _Choice:
    """Converter of a ``Literal[...]`` of strings: the value must be one of them."""

    choices: tuple[str, ...]

    def __call__(self, value: str) -> str:
        if value not in self.choices:
            raise ValueError(f"expected one of {', '.join(self.choices)}, got {value!r}")
        return value


def _converter_name(conv: Callable[[str], Any]) -> str:
    if isinstance(conv, _Choice):
        return "|".join(conv.choices)
    return {str: "text", int: "integer", float: "number", boolean: "true/false", text_list: "list (a+b)",
            int_list: "integer list (1+2)", float_list: "number list (0.1+0.5)"}.get(conv, "value")


_LISTS = {str: text_list, int: int_list, float: float_list}
_SCALARS: dict[Any, Callable[[str], Any]] = {bool: boolean, int: int, float: float, str: str, Path: str}
_SEQUENCES = (list, tuple, collections.abc.Sequence, collections.abc.Iterable, collections.abc.Collection)


def _converter(hint: Any) -> Callable[[str], Any] | None:
    """The converter a spec value of type ``hint`` goes through, or None when a spec cannot give one."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (Union, types.UnionType):
        convs = [c for c in (_converter(a) for a in args if a is not type(None)) if c is not None]
        lists = [c for c in convs if c in _LISTS.values()]
        return (lists or convs or [None])[0]
    if origin is Literal:
        return _Choice(tuple(args)) if args and all(isinstance(a, str) for a in args) else None
    if origin in _SEQUENCES:
        items = [a for a in args if a is not Ellipsis]
        return _LISTS.get(items[0] if items else str) if len(items) <= 1 else None
    if hint in _SCALARS:
        return _SCALARS[hint]
    if isinstance(hint, type) and issubclass(hint, os.PathLike):
        return str
    return None


def _mapping_values(hint: Any) -> Callable[[str], Any] | None:
    """The converter of the values of a ``Mapping[str, X]`` hint (inside ``| None``), else None."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (Union, types.UnionType):
        return next((c for c in (_mapping_values(a) for a in args) if c is not None), None)
    if origin in (dict, collections.abc.Mapping, collections.abc.MutableMapping) and len(args) == 2 \
            and args[0] is str:
        return _converter(args[1])
    return None


def _plain(text: str) -> str:
    """Docstring text without reST markup: ``x`` -> x, :class:`~a.b.C` -> C, :func:`a.f` -> a.f."""
    text = re.sub(r":\w+:`~([^`]+)`", lambda m: m.group(1).rsplit(".", 1)[-1], text)
    text = re.sub(r":\w+:`([^`]+)`", r"\1", text)
    return text.replace("``", "")


def _arg_docs(doc: str | None) -> tuple[str, dict[str, str]]:
    """(summary, parameter -> description) from a docstring: its first paragraph and its
    Google-style ``Args:`` section."""
    text = _plain(inspect.cleandoc(doc or ""))
    summary = " ".join(text.split("\n\n", 1)[0].split())
    docs: dict[str, str] = {}
    lines = text.splitlines()
    start = next((i for i, ln in enumerate(lines) if ln.strip() in ("Args:", "Arguments:", "Parameters:")), None)
    if start is None:
        return summary, docs
    indent = len(lines[start]) - len(lines[start].lstrip())
    entry_indent: int | None = None
    current: str | None = None
    for line in lines[start + 1:]:
        if not line.strip():
            continue
        depth = len(line) - len(line.lstrip())
        if depth <= indent:
            break
        match = re.match(r"\s*(\w+)(?: \([^)]*\))?:\s*(.*)$", line)
        if match and (entry_indent is None or depth == entry_indent):
            entry_indent = depth
            current = match.group(1)
            docs[current] = match.group(2).strip()
        elif current is not None:
            docs[current] = f"{docs[current]} {line.strip()}".strip()
    return summary, docs


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
_MISSING = inspect.Parameter.empty


@dataclass(frozen=True)
class ProbeOption:
    """One spec key of a probe, read from the signature of what builds it."""

    name: str
    convert: Callable[[str], Any]
    required: bool
    default: Any = None
    doc: str = ""

    @property
    def type_name(self) -> str:
        return _converter_name(self.convert)

    def describe(self) -> str:
        """``name* (type)`` for a required key, ``name (type, default X)`` otherwise, then the description."""
        head = f"{self.name}* ({self.type_name})" if self.required else \
            f"{self.name} ({self.type_name}, default {_show_default(self.default)})"
        return f"{head}: {self.doc}" if self.doc else head


def _show_default(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (list, tuple)):
        return "+".join(map(str, value)) if value else "(none)"
    return "none" if value is None else str(value)


@dataclass(frozen=True)
class _Entry:
    factory: Callable[..., Probe | ModelProbe]
    options: dict[str, ProbeOption]
    #: key prefix -> (mapping parameter it fills, converter of its values, description)
    prefixes: dict[str, tuple[str, Callable[[str], Any], str]]
    takes_tokenizer: bool
    help: str


_REGISTRY: dict[str, _Entry] = {}
_DISCOVERED = False
_T = TypeVar("_T")


def _read_signature(target: Callable[..., Any], prefixes: Mapping[str, str]) -> tuple[
        dict[str, ProbeOption], dict[str, tuple[str, Callable[[str], Any], str]], bool, str]:
    """The spec keys of ``target`` (a probe class or a factory function)."""
    func = target.__init__ if inspect.isclass(target) else target
    where = getattr(target, "__qualname__", repr(target))
    try:
        hints = typing.get_type_hints(func)
    except Exception as exc:  # noqa: BLE001 - an unresolvable annotation is the registrant's bug
        raise TypeError(f"probe {where}: cannot read the type hints of its parameters ({exc})") from exc
    summary, docs = _arg_docs(target.__doc__)
    params = inspect.signature(target).parameters
    options: dict[str, ProbeOption] = {}
    takes_tokenizer = False
    by_param = {param: prefix for prefix, param in prefixes.items()}
    for name, param in params.items():
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            continue
        if param.kind is param.POSITIONAL_ONLY:
            raise TypeError(f"probe {where}: parameter {name!r} is positional-only; a spec passes keywords")
        if name == TOKENIZER_PARAMETER:
            takes_tokenizer = True
            continue
        if name in by_param:
            continue
        conv = _converter(hints.get(name, str))
        if conv is None:
            if param.default is _MISSING:
                raise TypeError(f"probe {where}: required parameter {name!r} has type {hints.get(name)!r}, "
                                "which a spec cannot give; give it a default or register a factory")
            continue
        options[name] = ProbeOption(name, conv, param.default is _MISSING,
                                    None if param.default is _MISSING else param.default, docs.get(name, ""))
    prefix_specs = {}
    for prefix, param in prefixes.items():
        conv = _mapping_values(hints.get(param)) if param in params else None
        if conv is None:
            raise TypeError(f"probe {where}: prefix {prefix!r} needs a parameter {param!r} of type Mapping[str, X]")
        prefix_specs[prefix] = (param, conv, docs.get(param, ""))
    return options, prefix_specs, takes_tokenizer, summary


def register_probe(target: _T | None = None, /, *, name: str | None = None, prefixes: Mapping[str, str] | None = None,
                   help: str | None = None, replace: bool = False) -> Any:
    """Make a probe usable in specs; as a decorator (``@register_probe``, ``@register_probe(...)``) or a call.

    ``target`` is a :class:`Probe` / :class:`ModelProbe` class or a factory function returning
    one; its keys come from its signature (see the module docstring). ``name``: the spec name
    (default: the class's ``name`` attribute, else the function's name). ``prefixes`` maps a key
    prefix to a ``Mapping[str, X]`` parameter: keys ``<prefix><key>=value`` fill it (``input_php=suite``
    -> ``input_sources={"php": "suite"}``). ``help``: the one-line description (default: the
    docstring's first paragraph). Registering a taken name raises unless ``replace``.
    Returns ``target``.
    """
    if target is None:
        return lambda t: register_probe(t, name=name, prefixes=prefixes, help=help, replace=replace)
    if not callable(target):
        raise TypeError(f"register_probe needs a probe class or factory function, got {target!r}")
    if inspect.isclass(target) and not issubclass(target, (Probe, ModelProbe)):
        raise TypeError(f"{target.__name__} is not a Probe or ModelProbe subclass")
    if name is None:
        name = getattr(target, "name", None) if inspect.isclass(target) else getattr(target, "__name__", None)
    if not isinstance(name, str) or not name or not all(ch.isalnum() or ch in "_-." for ch in name):
        raise ValueError(f"bad probe name {name!r}")
    if not str(getattr(target, "__module__", "")).startswith(__package__ + "."):
        _discover()  # built-in probes first, so a clash with one is caught here, and replace= lasts
    old = _REGISTRY.get(name)
    if old is not None and not replace and _identity(old.factory) != _identity(target):
        raise ValueError(f"probe {name!r} is already registered (pass replace=True to override)")
    options, prefix_specs, takes_tokenizer, summary = _read_signature(target, dict(prefixes or {}))
    _REGISTRY[name] = _Entry(target, options, prefix_specs, takes_tokenizer, summary if help is None else help)
    return target


def _identity(obj: Any) -> tuple[str, str]:
    """Module and qualified name: the same probe re-registered by a module imported twice is no clash."""
    return getattr(obj, "__module__", ""), getattr(obj, "__qualname__", repr(obj))


def _discover() -> None:
    """Import the probe modules of this package and load the ``lensprobe.probes`` entry points (once)."""
    global _DISCOVERED
    if _DISCOVERED:
        return
    _DISCOVERED = True
    package = importlib.import_module(__package__)
    for info in pkgutil.iter_modules(package.__path__):
        if info.name != __name__.rsplit(".", 1)[1]:
            importlib.import_module(f"{__package__}.{info.name}")
    for ep in _entry_points():
        try:
            obj = ep.load()
        except Exception as exc:  # noqa: BLE001 - one broken plugin must not break every sweep
            warnings.warn(f"probe entry point {ep.name!r} ({ep.value}) failed to load: {type(exc).__name__}: {exc}",
                          RuntimeWarning, stacklevel=2)
            continue
        if inspect.ismodule(obj) or any(e.factory is obj for e in _REGISTRY.values()):
            continue  # a module registers its probes on import
        register_probe(obj, name=ep.name)


def _entry_points() -> list[Any]:
    return list(metadata.entry_points(group=ENTRY_POINT_GROUP))


def registered_probes() -> list[str]:
    """The spec names of every probe (built-in and registered)."""
    _discover()
    return sorted(_REGISTRY)


def _entry(name: str) -> _Entry:
    _discover()
    entry = _REGISTRY.get(name)
    if entry is None:
        raise KeyError(f"unknown probe {name!r}; known: {', '.join(sorted(_REGISTRY))}")
    return entry


def probe_options(name: str) -> dict[str, ProbeOption]:
    """The spec keys of probe ``name`` (prefix keys not included; see :func:`probe_help`)."""
    return dict(_entry(name).options)


def probe_help(name: str) -> str:
    """The probe's description, then one line per key: ``key* (type)`` for a required key,
    ``key (type, default X)`` otherwise, and what it means."""
    entry = _entry(name)
    lines = [f"{name}: {entry.help}" if entry.help else f"{name}:"]
    lines += [f"  {opt.describe()}" for opt in entry.options.values()]
    lines += [f"  {prefix}<name> ({_converter_name(conv)}): {param}[<name>]" + (f": {doc}" if doc else "")
              for prefix, (param, conv, doc) in entry.prefixes.items()]
    return "\n".join(lines)


def make_probe(spec: str | ProbeSpec, *, tokenizer: Any = None) -> Probe | ModelProbe:
    """A configured probe from a spec string (see the module docstring)."""
    _discover()
    parsed = spec if isinstance(spec, ProbeSpec) else parse_probe_spec(spec)
    where = f"probe spec {parsed.text or parsed.name!r}"
    entry = _REGISTRY.get(parsed.name)
    if entry is None:
        raise ProbeSpecError(f"{where}: unknown probe {parsed.name!r}; known: {', '.join(sorted(_REGISTRY))}")
    kwargs: dict[str, Any] = {}
    for key, raw in parsed.options.items():
        option = entry.options.get(key)
        prefix = next((p for p in entry.prefixes if key.startswith(p) and len(key) > len(p)), None)
        if option is None and prefix is None:
            allowed = list(entry.options) + [f"{p}<name>" for p in entry.prefixes]
            raise ProbeSpecError(f"{where}: unknown key {key!r} for probe {parsed.name!r}; "
                                 f"allowed: {', '.join(allowed)}")
        conv = option.convert if option is not None else entry.prefixes[prefix][1]
        try:
            value = conv(raw)
        except (TypeError, ValueError) as exc:
            raise ProbeSpecError(f"{where}: key {key!r} expects {_converter_name(conv)}: {exc}") from None
        if option is not None:
            kwargs[key] = value
        else:
            kwargs.setdefault(entry.prefixes[prefix][0], {})[key[len(prefix):]] = value
    missing = [k for k, opt in entry.options.items() if opt.required and k not in kwargs]
    if missing:
        raise ProbeSpecError(f"{where}: missing required key(s) {', '.join(missing)} for probe {parsed.name!r}")
    if entry.takes_tokenizer:
        kwargs[TOKENIZER_PARAMETER] = tokenizer
    try:
        probe = entry.factory(**kwargs)
    except ProbeSpecError as exc:
        raise ProbeSpecError(f"{where}: {exc}") from exc
    except (ValueError, TypeError, KeyError, FileNotFoundError) as exc:
        msg = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        raise ProbeSpecError(f"{where}: {msg}") from exc
    if not isinstance(probe, (Probe, ModelProbe)):
        raise ProbeSpecError(f"{where}: {_identity(entry.factory)[1]} returned {type(probe).__name__}, "
                             "not a Probe or ModelProbe")
    return probe
