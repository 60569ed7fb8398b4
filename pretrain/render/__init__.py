"""One renderer module per language: everything a language spells.

``pretrain/render/<name>.py`` for each canonical name of :data:`lensprobe.languages.LANGUAGES`
defines

* ``LANGUAGE``: the canonical name;
* ``RENDERER``: a :class:`pretrain.render.base.Renderer` subclass that renders a program of the
  shared model (:mod:`pretrain.programs`) and single expressions of it;
* ``render_concept(concept) -> Rendering``: the canonical rendering of a Babel concept
  (:mod:`pretrain.programs.pipeline`);
* ``literal(value)`` and ``checking_program(definitions, checks)``: a concept's test cases as an
  executable program printing ``PASS name`` / ``FAIL name``;
* ``TERMINAL_FORMS`` (the identifier at each terminal's return, for the Babel lens suite) and
  ``DOCUMENT_PREFIX`` (what a Babel document of concepts starts with).

:func:`language_module` finds the module by name, so adding a language adds a module here and an
entry in :mod:`lensprobe.languages`, nothing else (docs/adding-a-language.md).
"""
from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any

from lensprobe.languages import check_language

from ..programs.nodes import Expr, Program

__all__ = ["language_module", "render_program", "render_expression"]

_MODULES: dict[str, ModuleType] = {}
_REQUIRED = ("LANGUAGE", "RENDERER", "render_concept", "literal", "checking_program", "TERMINAL_FORMS",
             "DOCUMENT_PREFIX")


def language_module(language: str) -> ModuleType:
    """The renderer module of a canonical language name (``pretrain.render.<language>``)."""
    module = _MODULES.get(language)
    if module is None:
        check_language(language)
        name = f"{__name__}.{language}"
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise
            raise ValueError(f"language {language!r} has no renderer: expected a module {name} "
                             f"(docs/adding-a-language.md)") from None
        missing = [attr for attr in _REQUIRED if not hasattr(module, attr)]
        if missing or module.LANGUAGE != language:
            raise ValueError(f"{name}: not a renderer module for {language!r} (missing {missing}, "
                             f"LANGUAGE={getattr(module, 'LANGUAGE', None)!r})")
        _MODULES[language] = module
    return module


def render_program(program: Program, language: str) -> str:
    """Source text of ``program`` in ``language`` (a canonical name)."""
    return language_module(language).RENDERER(program).render_program()


def render_expression(expr: Expr | Any, language: str) -> str:
    """One expression in ``language``; the spelling of each primitive (imports it would need are not
    included)."""
    return language_module(language).RENDERER().expr(expr)
