"""The programming languages lensprobe knows, in one table.

Evaluation (:mod:`lensprobe.evaluate`), fitting (:mod:`lensprobe.analysis.fit`), pretraining
(:mod:`pretrain`) and the Babel benchmark (:mod:`lensprobe.babel`) read their language names,
aliases, file extensions, comment syntax and toolchains from here. Adding a language starts with
one :class:`Language` entry below (docs/adding-a-language.md).

Canonical names are lower-case identifiers (``"csharp"``, ``"cpp"``); every other spelling
(``"C#"``, ``"c++"``, ``"golang"``) is an alias that :func:`canonical_language` maps to its name.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from types import MappingProxyType
from typing import Mapping

__all__ = ["Language", "LANGUAGES", "LANGUAGE_INFO", "ALIASES", "EXTENSIONS", "UnknownLanguageError",
           "canonical_language", "canonical_language_or_none", "check_language", "language_info",
           "language_of_path"]


@dataclass(frozen=True)
class Language:
    """One language: its names, files, comments and the toolchain evaluation needs.

    ``aliases`` are matched case-insensitively (the canonical name is always one); ``extensions``
    map source files to the language (the first is the one a runner writes); ``tools`` are the
    executables that must be on ``PATH`` to build and run a program
    (:func:`lensprobe.evaluate.runners.missing_tools`). ``build`` (optional) and ``run`` are the
    commands with which the generic runner builds and runs ``prog<first extension>`` in a fresh
    directory; the five built-in languages leave them empty: they have tuned runners in
    :mod:`lensprobe.evaluate.runners` (precompiled headers, a shared Go cache, mono's asserts).
    """

    name: str
    display: str
    aliases: tuple[str, ...]
    extensions: tuple[str, ...]
    line_comment: str
    tools: tuple[str, ...]
    build: tuple[str, ...] = ()
    run: tuple[str, ...] = ()


_TABLE: tuple[Language, ...] = (
    Language("python", "Python", ("py", "python3"), (".py",), "#", ()),
    Language("php", "PHP", (), (".php",), "//", ("php",)),
    Language("csharp", "C#", ("c#", "cs", "c-sharp"), (".cs",), "//", ("mcs", "mono")),
    # "go_test.go" is the language field of MultiPL-E's Go records
    Language("go", "Go", ("golang", "go_test.go"), (".go",), "//", ("go",)),
    # ``.h`` is left out: it is as often C as C++
    Language("cpp", "C++", ("c++", "cxx"),
             (".cpp", ".cc", ".cxx", ".hpp", ".hh", ".hxx", ".c++", ".ipp", ".tcc"), "//", ("g++",)),
)

#: Canonical language names, in the order tables and figures list them.
LANGUAGES: tuple[str, ...] = tuple(lang.name for lang in _TABLE)
#: Canonical name -> :class:`Language`.
LANGUAGE_INFO: Mapping[str, Language] = MappingProxyType({lang.name: lang for lang in _TABLE})
#: Lower-case alias (canonical names included) -> canonical name.
ALIASES: Mapping[str, str] = MappingProxyType(
    {alias: lang.name for lang in _TABLE for alias in (lang.name, *lang.aliases)})
#: Lower-case file extension (with the dot) -> canonical name.
EXTENSIONS: Mapping[str, str] = MappingProxyType({ext: lang.name for lang in _TABLE for ext in lang.extensions})


class UnknownLanguageError(ValueError):
    """A language name that is neither a canonical name nor an alias."""


def canonical_language(name: str) -> str:
    """The canonical name of ``name`` (``"C#"`` -> ``"csharp"``, ``"c++"`` -> ``"cpp"``); case and
    surrounding spaces are ignored. Raises :class:`UnknownLanguageError` for any other name."""
    key = str(name).strip().lower()
    if key not in ALIASES:
        raise UnknownLanguageError(f"unknown language {name!r}; known: {', '.join(LANGUAGES)} "
                                   f"(aliases: {', '.join(sorted(set(ALIASES) - set(LANGUAGES)))})")
    return ALIASES[key]


def canonical_language_or_none(name: str) -> str | None:
    """Like :func:`canonical_language`, but ``None`` for a name it does not know (for scanning data
    that holds other languages too, e.g. a language column of The Stack)."""
    return ALIASES.get(str(name).strip().lower())


def check_language(language: str) -> str:
    """``language`` itself when it is a canonical name (aliases are not accepted); else
    :class:`UnknownLanguageError`."""
    if language not in LANGUAGE_INFO:
        raise UnknownLanguageError(f"unknown language {language!r}; expected one of {', '.join(LANGUAGES)}")
    return language


def language_info(name: str) -> Language:
    """The :class:`Language` entry of a canonical name or alias."""
    return LANGUAGE_INFO[canonical_language(name)]


def language_of_path(path: str | os.PathLike[str]) -> str | None:
    """The language of a source file by its extension (``None`` for other files)."""
    return EXTENSIONS.get(os.path.splitext(str(path))[1].lower())
