"""Identifier suites: declarative identifier pairs + templated completion prompts.

A suite is one YAML file (``probes/<language>.yaml``) that lists identifier pairs — a target-language
identifier (``strlen``) and its Python counterpart (``len``) — and, for each, hand-written templates
with ``{{slot}}`` placeholders and one ``{{@}}`` cursor.  Rendering picks slot values with a seeded
RNG and cuts every template at the cursor, so each prompt ends exactly where the identifier is to be
written.  The schema is documented in ``probes/README.md``.

Public API::

    suite = load_suite("php")                # built-in name, YAML path, user dir or entry point
    items = suite.render(seed=0)             # list[SuiteItem]
    sets = suite.token_sets(tokenizer)       # {identifier: TokenSets}
    report = validate_suite("my.yaml", tokenizer=tok)
    list_suites()

Modules: :mod:`~lensprobe.suites.schema` (Template, IdentifierSpec, constants),
:mod:`~lensprobe.suites.tokens` (TokenSets, split_form, first_token_ids),
:mod:`~lensprobe.suites.rendering` (SuiteItem, prompts from templates), :mod:`~lensprobe.suites.suite`
(Suite), :mod:`~lensprobe.suites.validation` (load_suite, validate_suite, SuiteError) and
:mod:`~lensprobe.suites.discovery` (list_suites, resolve_suite_path, entry points).
"""
from lensprobe.suites.discovery import ENTRY_POINT_GROUP, ENV_VAR, list_suites, resolve_suite_path
from lensprobe.suites.rendering import SuiteItem
from lensprobe.suites.schema import CURSOR, MIN_DISTINCT_PROMPTS, IdentifierSpec, Template
from lensprobe.suites.suite import Suite
from lensprobe.suites.tokens import TokenSets, encode_text, first_token_ids, split_form, token_texts
from lensprobe.suites.validation import (SuiteError, ValidationIssue, ValidationReport, load_suite, suite_from_dict,
                                         validate_suite)

__all__ = [
    "CURSOR", "ENTRY_POINT_GROUP", "ENV_VAR", "MIN_DISTINCT_PROMPTS", "Suite", "SuiteError", "SuiteItem",
    "Template", "IdentifierSpec", "TokenSets", "ValidationIssue", "ValidationReport", "list_suites",
    "load_suite", "validate_suite", "resolve_suite_path", "split_form", "token_texts", "first_token_ids",
    "encode_text", "suite_from_dict",
]
