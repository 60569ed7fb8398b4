"""Validation: suite files read, checked and built into :class:`~lensprobe.suites.suite.Suite` objects.

Checks: YAML syntax, required and unknown fields, slot names and values, slot references (also
inside slot values, cycles included), one cursor per template, duplicate ids, and that every
identifier renders enough distinct prompts; with a tokenizer also empty or colliding token sets
and forms split into several tokens.  Every problem is a :class:`ValidationIssue` naming the file
and the entry (``identifiers[3].templates[1]``); :func:`load_suite` raises :class:`SuiteError`
with all of them, :func:`validate_suite` returns them.
"""
from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import yaml

from lensprobe.suites.discovery import resolve_suite_path
from lensprobe.suites.rendering import slot_refs
from lensprobe.suites.schema import (CURSOR, DEFAULT_N_PROMPTS, IDENT_KEYS, MIN_DISTINCT_PROMPTS, SUITE_KEYS,
                                     SUPPORTED_VERSIONS, TEMPLATE_KEYS, IdentifierSpec, Template)
from lensprobe.suites.suite import Suite
from lensprobe.suites.tokens import decode_token, encode_text, identifier_token_sets, split_form, token_texts

__all__ = ["ValidationIssue", "ValidationReport", "SuiteError", "load_suite", "validate_suite", "suite_from_dict"]

_SLOT_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?$")
_ID_RE = re.compile(r"^[A-Za-z0-9_.:+\-!&|=]+$")


@dataclass(frozen=True)
class ValidationIssue:
    file: str
    entry: str
    message: str
    severity: str = "error"  # "error" | "warning"

    def __str__(self) -> str:
        where = f"{self.file}: {self.entry}" if self.entry else self.file
        return f"{where}: {self.severity}: {self.message}"


@dataclass
class ValidationReport:
    """All problems found in one suite file."""

    file: str
    issues: list[ValidationIssue] = field(default_factory=list)

    @property
    def errors(self) -> list[ValidationIssue]:
        return [i for i in self.issues if i.severity == "error"]

    @property
    def warnings(self) -> list[ValidationIssue]:
        return [i for i in self.issues if i.severity == "warning"]

    @property
    def ok(self) -> bool:
        return not self.errors

    def add(self, entry: str, message: str, severity: str = "error") -> None:
        self.issues.append(ValidationIssue(self.file, entry, message, severity))

    def format(self) -> str:
        if not self.issues:
            return f"{self.file}: OK"
        return "\n".join(str(i) for i in self.issues)

    def to_dataframe(self):
        import pandas as pd

        return pd.DataFrame([i.__dict__ for i in self.issues], columns=["file", "entry", "message", "severity"])


class SuiteError(ValueError):
    """A suite file failed validation; ``report`` holds every issue."""

    def __init__(self, report: ValidationReport):
        self.report = report
        super().__init__("invalid suite:\n" + "\n".join(str(i) for i in report.errors))


# --------------------------------------------------------------------------- parsing + validation
def _written_word(form: str) -> str:
    """The word a form writes (leading punctuation is context: ``.append`` and ``=append`` write ``append``)."""
    return split_form(form)[1] or form


def _as_forms(value: Any, report: ValidationReport, entry: str) -> tuple[str, ...] | None:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not value:
        report.add(entry, "must be a non-empty string or list of strings")
        return None
    bad = [v for v in value if not isinstance(v, str) or not v.strip() or v != v.strip()]
    if bad:
        report.add(entry, f"forms must be non-empty strings without surrounding whitespace, got {bad!r}")
        return None
    return tuple(value)


def _parse_slots(raw: Any, report: ValidationReport, entry: str) -> dict[str, tuple]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        report.add(entry, f"must be a mapping of slot name -> list of values, got {type(raw).__name__}")
        return {}
    out: dict[str, tuple] = {}
    for name, values in raw.items():
        where = f"{entry}.{name}"
        if not isinstance(name, str) or not re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", name):
            report.add(where, f"invalid slot name {name!r} (letters, digits, underscore)")
            continue
        if not isinstance(values, list) or not values:
            report.add(where, "must be a non-empty list of values")
            continue
        clean: list[Any] = []
        keys = None
        for k, v in enumerate(values):
            if isinstance(v, bool) or v is None:
                report.add(f"{where}[{k}]", f"slot value must be a string, number or mapping, got {v!r}"
                           " (quote YAML words like yes/no/null)")
                continue
            if isinstance(v, (int, float)):
                v = str(v)
            if isinstance(v, dict):
                if not all(isinstance(x, str) and isinstance(y, (str, int, float)) and not isinstance(y, bool)
                           for x, y in v.items()):
                    report.add(f"{where}[{k}]", "mapping slot values must map field names to strings")
                    continue
                v = {x: str(y) for x, y in v.items()}
                if keys is None:
                    keys = set(v)
                elif set(v) != keys:
                    report.add(f"{where}[{k}]", f"fields {sorted(v)} differ from the first value's {sorted(keys)}")
            elif not isinstance(v, str):
                report.add(f"{where}[{k}]", f"slot value must be a string, number or mapping, got {type(v).__name__}")
                continue
            clean.append(v)
        if len({json.dumps(v, sort_keys=True) for v in clean}) != len(clean):
            report.add(where, "duplicate slot values", "warning")
        out[name] = tuple(clean)
    return out


def _check_refs(text: str, resolve, report: ValidationReport, entry: str, depth: int = 0,
                seen: tuple[str, ...] = ()) -> None:
    """Report unknown slots / fields referenced (transitively) from ``text``."""
    for ref in slot_refs(text):
        if ref == "@":
            if depth:
                report.add(entry, "the cursor {{@}} may appear only in the template text, not in slot values")
            continue
        if not _SLOT_NAME_RE.match(ref):
            report.add(entry, f"malformed slot reference {{{{{ref}}}}}")
            continue
        name, _, fld = ref.partition(".")
        values = resolve(name)
        if values is None:
            report.add(entry, f"unknown slot {{{{{ref}}}}}")
            continue
        if name in seen:
            report.add(entry, f"slot {name!r} refers to itself (cycle {' -> '.join(seen + (name,))})")
            continue
        for v in values:
            if fld:
                if not isinstance(v, dict):
                    report.add(entry, f"{{{{{ref}}}}}: slot {name!r} has plain values, not fields")
                    break
                if fld not in v:
                    report.add(entry, f"{{{{{ref}}}}}: slot {name!r} has no field {fld!r} (fields: {sorted(v)})")
                    break
                _check_refs(v[fld], resolve, report, entry, depth + 1, seen + (name,))
            elif isinstance(v, dict):
                report.add(entry, f"{{{{{ref}}}}}: slot {name!r} has fields {sorted(v)}; use {{{{{name}.FIELD}}}}")
                break
            else:
                _check_refs(v, resolve, report, entry, depth + 1, seen + (name,))


def _parse(data: Any, report: ValidationReport, name: str, path: str | None) -> Suite | None:
    if not isinstance(data, dict):
        report.add("", f"top level must be a mapping, got {type(data).__name__}")
        return None
    for key in sorted(set(data) - SUITE_KEYS, key=str):
        report.add(str(key), f"unknown field {key!r} (allowed: {sorted(SUITE_KEYS)})")
    for key in ("language", "version", "identifiers"):
        if key not in data:
            report.add(key, f"missing required field {key!r}")
    language = data.get("language")
    if "language" in data and (not isinstance(language, str) or not language.strip()):
        report.add("language", "must be a non-empty string")
    version = data.get("version")
    if "version" in data and version not in SUPPORTED_VERSIONS:
        report.add("version", f"unsupported schema version {version!r} (supported: {list(SUPPORTED_VERSIONS)})")
    reference_language = data.get("reference_language", "python")
    if not isinstance(reference_language, str):
        report.add("reference_language", "must be a string")
    min_prompts = data.get("min_prompts", MIN_DISTINCT_PROMPTS)
    if isinstance(min_prompts, bool) or not isinstance(min_prompts, int) or min_prompts < 1:
        report.add("min_prompts", f"must be a positive integer, got {min_prompts!r}")
        min_prompts = MIN_DISTINCT_PROMPTS
    n_prompts = data.get("n_prompts", DEFAULT_N_PROMPTS)
    if isinstance(n_prompts, bool) or not isinstance(n_prompts, int) or n_prompts < min_prompts:
        report.add("n_prompts", f"must be an integer >= {min_prompts}, got {n_prompts!r}")
        n_prompts = max(DEFAULT_N_PROMPTS, min_prompts)
    description = data.get("description", "") or ""
    if not isinstance(description, str):
        report.add("description", f"must be a string, got {type(description).__name__}")
        description = ""
    if "source" in data and not isinstance(data["source"], str):
        report.add("source", f"must be a string (where the suite comes from), got {type(data['source']).__name__}")
    suite_slots = _parse_slots(data.get("slots"), report, "slots")

    raw_idents = data.get("identifiers")
    idents: list[IdentifierSpec] = []
    if "identifiers" in data and (not isinstance(raw_idents, list) or not raw_idents):
        report.add("identifiers", "must be a non-empty list")
        raw_idents = []
    seen_ids: dict[str, int] = {}
    for i, raw in enumerate(raw_idents or []):
        entry = f"identifiers[{i}]"
        if not isinstance(raw, dict):
            report.add(entry, f"must be a mapping, got {type(raw).__name__}")
            continue
        for key in sorted(set(raw) - IDENT_KEYS, key=str):
            report.add(f"{entry}.{key}", f"unknown field {key!r} (allowed: {sorted(IDENT_KEYS)})")
        for key in ("id", "target_forms", "reference_forms", "templates"):
            if key not in raw:
                report.add(entry, f"missing required field {key!r}")
        ident = raw.get("id")
        if "id" in raw:
            if not isinstance(ident, str) or not _ID_RE.match(ident):
                report.add(f"{entry}.id", f"invalid id {ident!r} (letters, digits and _.:+-!&|= only)")
            elif ident in seen_ids:
                report.add(f"{entry}.id", f"duplicate id {ident!r} (also identifiers[{seen_ids[ident]}])")
            else:
                seen_ids[ident] = i
        label = entry
        target = _as_forms(raw.get("target_forms"), report, f"{label}.target_forms") if "target_forms" in raw else None
        reference = (_as_forms(raw.get("reference_forms"), report, f"{label}.reference_forms")
                     if "reference_forms" in raw else None)
        token_forms = None
        if raw.get("token_forms") is not None:
            tf = raw["token_forms"]
            if not isinstance(tf, dict) or not tf or set(tf) - {"target", "reference"}:
                report.add(f"{entry}.token_forms", "must be a mapping with keys 'target' and/or 'reference'")
            else:
                token_forms = {}
                for side, val in tf.items():
                    vals = [val] if isinstance(val, str) else val
                    if not isinstance(vals, list) or not vals or not all(isinstance(v, str) and v for v in vals):
                        report.add(f"{entry}.token_forms.{side}", "must be a non-empty list of strings")
                    else:
                        token_forms[side] = tuple(vals)
        n_ident = raw.get("n_prompts")
        if n_ident is not None and (isinstance(n_ident, bool) or not isinstance(n_ident, int)
                                    or n_ident < min_prompts):
            report.add(f"{entry}.n_prompts", f"must be an integer >= {min_prompts}, got {n_ident!r}")
            n_ident = None
        ident_slots = _parse_slots(raw.get("slots"), report, f"{entry}.slots")
        templates: list[Template] = []
        raw_templates = raw.get("templates")
        if "templates" in raw and (not isinstance(raw_templates, list) or not raw_templates):
            report.add(f"{entry}.templates", "must be a non-empty list")
            raw_templates = []
        template_ids: set[str] = set()
        for j, rt in enumerate(raw_templates or []):
            tentry = f"{entry}.templates[{j}]"
            if isinstance(rt, str):
                rt = {"text": rt}
            if not isinstance(rt, dict):
                report.add(tentry, f"must be a string or a mapping, got {type(rt).__name__}")
                continue
            for key in sorted(set(rt) - TEMPLATE_KEYS, key=str):
                report.add(f"{tentry}.{key}", f"unknown field {key!r} (allowed: {sorted(TEMPLATE_KEYS)})")
            text = rt.get("text")
            if not isinstance(text, str) or not text.strip():
                report.add(tentry, "missing required field 'text' (a non-empty string)")
                continue
            tid = rt.get("id", f"t{j}")
            if not isinstance(tid, str) or not tid:
                report.add(f"{tentry}.id", f"template id must be a non-empty string, got {tid!r}")
                tid = f"t{j}"
            if tid in template_ids:
                report.add(f"{tentry}.id", f"duplicate template id {tid!r}")
            template_ids.add(tid)
            n_cursor = sum(1 for r in slot_refs(text) if r == "@")
            if n_cursor != 1:
                report.add(tentry, f"text must contain the cursor {CURSOR} exactly once (found {n_cursor})")
            t_slots = _parse_slots(rt.get("slots"), report, f"{tentry}.slots")

            def resolve(nm, _t=t_slots, _i=ident_slots):
                for scope in (_t, _i, suite_slots):
                    if nm in scope:
                        return scope[nm]
                return None

            _check_refs(text, resolve, report, tentry)
            templates.append(Template(tid, text, t_slots))
        if target is not None and reference is not None:
            named = f"{entry} ({ident})" if isinstance(ident, str) else entry
            same = [f for f in target if f in reference]
            if same:
                report.add(named, f"target_forms and reference_forms share {same!r}: the lens cannot tell "
                           "the languages apart on an identifier written the same in both; drop the pair "
                           "(or give forms that differ)")
            else:
                words = {_written_word(f) for f in target} & {_written_word(f) for f in reference}
                if words:
                    report.add(named, f"target and reference forms write the same word {sorted(words)!r}: "
                               "their token sets will collide with any tokenizer and the working-language probe "
                               "will exclude the pair", "warning")
        if isinstance(ident, str) and target is not None and reference is not None:
            idents.append(IdentifierSpec(ident, target, reference, tuple(templates), ident_slots,
                                         token_forms, n_ident))
    if report.errors:
        return None
    suite = Suite(name=name, language=language.strip(), reference_language=reference_language, version=version,
                  identifiers=tuple(idents), slots=suite_slots, n_prompts=n_prompts, description=description,
                  path=path, min_prompts=min_prompts)
    # Render with two seeds: every identifier must give enough distinct prompts.
    for i, spec in enumerate(suite.identifiers):
        want = spec.n_prompts or suite.n_prompts
        try:
            rendered = suite.render_identifier(spec, want, seed=0)
        except (KeyError, ValueError) as exc:
            report.add(f"identifiers[{i}]", f"cannot render: {exc}")
            continue
        distinct = len({p for _, p, _ in rendered})
        if distinct < min_prompts:
            report.add(f"identifiers[{i}]", f"only {distinct} distinct prompts (need >= {min_prompts});"
                       " add slot values or templates")
        elif distinct < want:
            report.add(f"identifiers[{i}]", f"only {distinct} distinct prompts of n_prompts={want}", "warning")
        for tid, prompt, _ in rendered:
            if not prompt.strip():
                report.add(f"identifiers[{i}].templates[{tid}]", "renders an empty prompt before the cursor")
                break
    return suite if not report.errors else None


def _check_tokens(suite: Suite, tokenizer: Any, report: ValidationReport) -> None:
    for i, spec in enumerate(suite.identifiers):
        entry = f"identifiers[{i}] ({spec.id})"
        target, reference = identifier_token_sets(spec, tokenizer)
        if not target:
            report.add(entry, "empty target token set")
        if not reference:
            report.add(entry, "empty reference token set")
        shared = target & reference
        if shared:
            toks = ", ".join(repr(decode_token(tokenizer, t)) for t in sorted(shared))
            report.add(entry, f"token sets collide on {toks}: the lens cannot tell {list(spec.target_forms)} from "
                       f"{list(spec.reference_forms)}; the working-language probe excludes this pair "
                       "(set token_forms to disambiguate)", "warning")
        for side, forms in (("target", spec.target_forms), ("reference", spec.reference_forms)):
            if spec.token_forms and side in spec.token_forms:
                continue
            for form in forms:
                word = token_texts(form)[0]
                ids = encode_text(tokenizer, word)
                if len(ids) > 1:
                    piece = decode_token(tokenizer, ids[0])
                    report.add(entry, f"{side} form {form!r} is split into {len(ids)} tokens; the set uses its "
                               f"first token {piece!r}", "warning")


def _read(path: Path, report: ValidationReport) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        report.add("", f"cannot read file: {exc}")
        return None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        report.add(where, f"malformed YAML: {getattr(exc, 'problem', None) or exc}")
        return None


def _load_path(path: Path) -> tuple[Suite | None, ValidationReport]:
    report = ValidationReport(str(path.absolute()))  # the full path: several files may share a name
    data = _read(path, report)
    if report.errors:
        return None, report
    suite = _parse(data, report, path.stem, str(path))
    return suite, report


def suite_from_dict(data: Mapping[str, Any], *, name: str, path: str | None = None) -> Suite:
    """A suite from the plain data of a YAML file (same schema and checks as :func:`load_suite`);
    raises :class:`SuiteError` naming ``name`` and the entry on any error."""
    report = ValidationReport(name)
    suite = _parse(data, report, name, path)
    if suite is None:
        raise SuiteError(report)
    return suite


def load_suite(name_or_path: str | os.PathLike | Suite, *,
               search_path: Sequence[str | os.PathLike] | None = None) -> Suite:
    """Load and validate a suite; raises :class:`SuiteError` naming the file and entry on any error."""
    if isinstance(name_or_path, Suite):
        return name_or_path
    path = resolve_suite_path(name_or_path, search_path=search_path)
    suite, report = _load_path(path)
    if suite is None:
        raise SuiteError(report)
    return suite


def validate_suite(path_or_suite: str | os.PathLike | Suite, *, tokenizer: Any = None,
                   search_path: Sequence[str | os.PathLike] | None = None) -> ValidationReport:
    """Check a suite file (or a loaded suite) and return every issue; never raises for bad content.

    Checks: YAML syntax, required/unknown fields, slot references, cursor, duplicate ids, distinct
    prompt count; with ``tokenizer``: empty or colliding token sets, forms split into several tokens.
    """
    if isinstance(path_or_suite, Suite):
        suite = path_or_suite
        report = ValidationReport(str(Path(suite.path).absolute()) if suite.path else suite.name)
    else:
        try:
            path = resolve_suite_path(path_or_suite, search_path=search_path)
        except (FileNotFoundError, KeyError) as exc:
            report = ValidationReport(str(path_or_suite))
            report.add("", str(exc.args[0] if exc.args else exc))
            return report
        suite, report = _load_path(path)
    if suite is not None and tokenizer is not None:
        _check_tokens(suite, tokenizer, report)
    return report
