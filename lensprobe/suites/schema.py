"""The suite schema: the plain objects a suite YAML file becomes, and the schema's constants.

A suite (:class:`lensprobe.suites.suite.Suite`) holds :class:`IdentifierSpec` entries (an
identifier pair and its templates); a :class:`Template` is text with ``{{slot}}`` placeholders
and one :data:`CURSOR`.  The file format is documented in ``probes/README.md``; the checks that
build these objects from YAML live in :mod:`lensprobe.suites.validation`.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

__all__ = ["CURSOR", "MIN_DISTINCT_PROMPTS", "SUPPORTED_VERSIONS", "DEFAULT_N_PROMPTS", "SUITE_KEYS", "IDENT_KEYS",
           "TEMPLATE_KEYS", "Template", "IdentifierSpec"]

#: The cursor marker: the prompt is the rendered template text before it.
CURSOR = "{{@}}"
#: Every identifier must render at least this many distinct prompts (unless the suite's
#: ``min_prompts`` field lowers it: generated suites of concrete prompts, e.g. lensprobe.babel.suite).
MIN_DISTINCT_PROMPTS = 10
#: Schema versions this module reads.
SUPPORTED_VERSIONS = (1,)
DEFAULT_N_PROMPTS = 20

#: The fields a suite file, an identifier entry and a template may have.
SUITE_KEYS = frozenset({"language", "reference_language", "version", "description", "n_prompts", "slots",
                        "identifiers", "source", "min_prompts"})
IDENT_KEYS = frozenset({"id", "target_forms", "reference_forms", "token_forms", "n_prompts", "slots", "templates",
                        "notes"})
TEMPLATE_KEYS = frozenset({"id", "text", "slots"})


@dataclass(frozen=True)
class Template:
    id: str
    text: str
    slots: Mapping[str, tuple] = field(default_factory=dict)


@dataclass(frozen=True)
class IdentifierSpec:
    id: str
    target_forms: tuple[str, ...]
    reference_forms: tuple[str, ...]
    templates: tuple[Template, ...]
    slots: Mapping[str, tuple] = field(default_factory=dict)
    token_forms: Mapping[str, tuple[str, ...]] | None = None
    n_prompts: int | None = None

