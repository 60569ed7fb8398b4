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
"""
from __future__ import annotations

import hashlib
import json
import os
import random
import re
import string
import types
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import yaml

__all__ = [
    "CURSOR", "ENTRY_POINT_GROUP", "ENV_VAR", "MIN_DISTINCT_PROMPTS", "Suite", "SuiteError", "SuiteItem",
    "Template", "IdentifierSpec", "TokenSets", "ValidationIssue", "ValidationReport", "list_suites",
    "load_suite", "validate_suite", "resolve_suite_path", "split_form", "token_texts", "first_token_ids",
    "encode_text", "suite_from_dict",
]

#: The cursor marker: the prompt is the rendered template text before it.
CURSOR = "{{@}}"
#: Entry-point group through which installed packages ship suites.
ENTRY_POINT_GROUP = "lensprobe.suites"
#: Environment variable: extra directories of suite YAML files (``os.pathsep``-separated).
ENV_VAR = "LENSPROBE_SUITES_PATH"
#: Every identifier must render at least this many distinct prompts (unless the suite's
#: ``min_prompts`` field lowers it: generated suites of concrete prompts, e.g. lensprobe.babel.suite).
MIN_DISTINCT_PROMPTS = 10
#: Schema versions this module reads.
SUPPORTED_VERSIONS = (1,)
DEFAULT_N_PROMPTS = 20

_SLOT_RE = re.compile(r"\{\{\s*([^{}]*?)\s*\}\}")
_SLOT_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?$")
_ID_RE = re.compile(r"^[A-Za-z0-9_.:+\-!&|=]+$")
_LEAD_PUNCT = set(string.punctuation) - {"_"}

_SUITE_KEYS = {"language", "reference_language", "version", "description", "n_prompts", "slots", "identifiers",
               "source", "min_prompts"}
_IDENT_KEYS = {"id", "target_forms", "reference_forms", "token_forms", "n_prompts", "slots", "templates", "notes"}
_TEMPLATE_KEYS = {"id", "text", "slots"}


# --------------------------------------------------------------------------- data classes
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


@dataclass(frozen=True)
class SuiteItem:
    """One rendered prompt.  ``prompt`` ends exactly where the identifier is written."""

    language: str
    identifier: str
    template_id: str
    index: int
    prompt: str
    suffix: str
    target_forms: tuple[str, ...]
    reference_forms: tuple[str, ...]

    @property
    def written_target(self) -> str:
        """What is typed at the cursor for the first target form (leading punctuation stripped)."""
        return split_form(self.target_forms[0])[1] or self.target_forms[0]

    @property
    def completion(self) -> str:
        """The full code snippet: prompt + written target identifier + the rest of the template."""
        return self.prompt + self.written_target + self.suffix

    def to_dict(self) -> dict[str, Any]:
        return {"language": self.language, "identifier": self.identifier, "template_id": self.template_id,
                "index": self.index, "prompt": self.prompt, "suffix": self.suffix,
                "target_forms": list(self.target_forms), "reference_forms": list(self.reference_forms)}


@dataclass(frozen=True)
class TokenSets:
    """Token ids of one identifier pair: target-language set, reference (Python) set, collision."""

    identifier: str
    target: frozenset[int]
    reference: frozenset[int]

    @property
    def shared(self) -> frozenset[int]:
        return self.target & self.reference

    @property
    def collision(self) -> bool:
        """True when the lens cannot tell the two languages apart (a token belongs to both sets)."""
        return bool(self.shared)


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


# --------------------------------------------------------------------------- forms and tokens
def split_form(form: str) -> tuple[str, str]:
    """Split a surface form into (leading punctuation, word core).

    ``".append"`` -> ``(".", "append")``; ``"=append"`` -> ``("=", "append")``;
    ``"&&"`` -> ``("&&", "")``; ``"Console.WriteLine"`` -> ``("", "Console.WriteLine")``.
    The leading punctuation belongs to the prompt (prompts end after it), the core is written.
    """
    i = 0
    while i < len(form) and form[i] in _LEAD_PUNCT:
        i += 1
    if i == len(form):
        return form, ""
    return form[:i], form[i:]


def token_texts(form: str) -> tuple[str, str]:
    """The two strings whose first tokens make a form's token set: ``core`` and ``" " + core``
    (for a form that is all punctuation, such as ``&&`` or ``!``, the form itself)."""
    lead, core = split_form(form)
    word = core or lead
    return word, " " + word


def encode_text(tokenizer: Any, text: str) -> list[int]:
    """Token ids of ``text`` without special tokens (HF tokenizers and ``tokenizers.Tokenizer``)."""
    try:
        enc = tokenizer.encode(text, add_special_tokens=False)
    except TypeError:  # pragma: no cover - exotic tokenizers
        enc = tokenizer.encode(text)
    ids = getattr(enc, "ids", enc)
    return [int(i) for i in ids]


def first_token_ids(tokenizer: Any, texts: Iterable[str]) -> frozenset[int]:
    """The first token of each text, skipping first tokens that decode to whitespace only
    (a tokenizer without a ``" word"`` merge yields a bare space token, shared by every form)."""
    out = set()
    for text in texts:
        ids = encode_text(tokenizer, text)
        if ids and not (text[:1].isspace() and not _decode_one(tokenizer, ids[0]).strip()):
            out.add(ids[0])
    return frozenset(out)


def _decode_one(tokenizer: Any, token_id: int) -> str:
    try:
        return tokenizer.decode([token_id])
    except Exception:  # pragma: no cover
        return str(token_id)


# --------------------------------------------------------------------------- rendering
def _slot_refs(text: str) -> list[str]:
    return [m.group(1) for m in _SLOT_RE.finditer(text)]


def _render_text(text: str, lookup, depth: int = 0) -> str:
    if depth > 8:
        raise ValueError("slot values nest deeper than 8 levels (cycle?)")

    def sub(m: re.Match) -> str:
        ref = m.group(1)
        if ref == "@":
            return CURSOR
        return _render_text(lookup(ref), lookup, depth + 1)

    return _SLOT_RE.sub(sub, text)


@dataclass(frozen=True)
class Suite:
    """A loaded identifier suite (see module docstring)."""

    name: str
    language: str
    reference_language: str
    version: int
    identifiers: tuple[IdentifierSpec, ...]
    slots: Mapping[str, tuple] = field(default_factory=dict)
    n_prompts: int = DEFAULT_N_PROMPTS
    description: str = ""
    path: str | None = None
    #: the fewest distinct prompts an identifier may render (the file's ``min_prompts``; default 10)
    min_prompts: int = MIN_DISTINCT_PROMPTS

    # -- lookup
    def __len__(self) -> int:
        return len(self.identifiers)

    @property
    def identifier_ids(self) -> list[str]:
        return [i.id for i in self.identifiers]

    def identifier(self, ident: str) -> IdentifierSpec:
        for spec in self.identifiers:
            if spec.id == ident:
                return spec
        raise KeyError(f"suite {self.name!r} has no identifier {ident!r}; known: {self.identifier_ids}")

    def digest(self) -> str:
        """Content hash (part of a probe's resume key)."""
        blob = json.dumps(_suite_to_plain(self), sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:16]

    # -- rendering
    def render(self, *, seed: int = 0, limit: int | None = None,
               identifiers: Sequence[str] | None = None) -> list[SuiteItem]:
        """Render every identifier's prompts deterministically from ``seed``.

        ``limit`` caps the prompts per identifier (default: the identifier's / suite's ``n_prompts``).
        """
        if limit is not None and (not isinstance(limit, int) or limit < 1):
            raise ValueError(f"limit must be a positive int, got {limit!r}")
        wanted = None if identifiers is None else set(identifiers)
        if wanted is not None:
            unknown = wanted - set(self.identifier_ids)
            if unknown:
                raise KeyError(f"suite {self.name!r} has no identifiers {sorted(unknown)}")
        items: list[SuiteItem] = []
        for spec in self.identifiers:
            if wanted is not None and spec.id not in wanted:
                continue
            n = spec.n_prompts or self.n_prompts
            if limit is not None:
                n = min(n, limit)
            for k, (tid, prompt, suffix) in enumerate(self._render_identifier(spec, n, seed)):
                items.append(SuiteItem(self.language, spec.id, tid, k, prompt, suffix,
                                       spec.target_forms, spec.reference_forms))
        return items

    def _slot_values(self, spec: IdentifierSpec, template: Template, name: str):
        for scope in (template.slots, spec.slots, self.slots):
            if name in scope:
                return scope[name]
        return None

    def _render_identifier(self, spec: IdentifierSpec, n: int, seed: int) -> list[tuple[str, str, str]]:
        rng = random.Random(f"{seed}|{self.language}|{spec.id}")
        seen: set[str] = set()
        out: list[tuple[str, str, str]] = []
        live = list(spec.templates)
        order = list(range(len(live)))
        rng.shuffle(order)
        live = [live[i] for i in order]
        misses = {t.id: 0 for t in live}
        while len(out) < n and live:
            for template in list(live):
                if len(out) >= n:
                    break
                text = self._render_template(spec, template, rng)
                prompt, _, suffix = text.partition(CURSOR)
                if prompt in seen:
                    misses[template.id] += 1
                    if misses[template.id] >= 200:
                        live.remove(template)
                    continue
                seen.add(prompt)
                out.append((template.id, prompt, suffix))
        return out

    def _render_template(self, spec: IdentifierSpec, template: Template, rng: random.Random) -> str:
        chosen: dict[str, Any] = {}

        def lookup(ref: str) -> str:
            name, _, fld = ref.partition(".")
            if name not in chosen:
                values = self._slot_values(spec, template, name)
                if not values:
                    raise KeyError(f"unknown slot {{{{{ref}}}}}")
                chosen[name] = values[rng.randrange(len(values))]
            value = chosen[name]
            if fld:
                return str(value[fld])
            return str(value)

        return _render_text(template.text, lookup)

    # -- tokens
    def token_sets(self, tokenizer: Any) -> dict[str, TokenSets]:
        """Per identifier: the first-token sets of the target and reference forms, and whether they collide.

        By default a form contributes the first token of ``core`` and of ``" " + core``, where core is
        the form without leading punctuation (``.append`` -> ``append``; ``&&`` stays ``&&``).
        ``token_forms`` in the YAML replaces this with exact strings (first token of each, as written).
        """
        out: dict[str, TokenSets] = {}
        for spec in self.identifiers:
            out[spec.id] = TokenSets(spec.id, *self._token_set_pair(spec, tokenizer))
        return out

    def _token_texts(self, spec: IdentifierSpec, side: str) -> list[str]:
        if spec.token_forms and side in spec.token_forms:
            return list(spec.token_forms[side])
        forms = spec.target_forms if side == "target" else spec.reference_forms
        return [t for f in forms for t in token_texts(f)]

    def _token_set_pair(self, spec: IdentifierSpec, tokenizer: Any) -> tuple[frozenset[int], frozenset[int]]:
        return (first_token_ids(tokenizer, self._token_texts(spec, "target")),
                first_token_ids(tokenizer, self._token_texts(spec, "reference")))

    def to_dict(self) -> dict[str, Any]:
        return _suite_to_plain(self)


def _suite_to_plain(suite: Suite) -> dict[str, Any]:
    def slots(s):
        return {k: list(v) for k, v in sorted(s.items())}

    plain = {
        "language": suite.language, "reference_language": suite.reference_language, "version": suite.version,
        "n_prompts": suite.n_prompts, "slots": slots(suite.slots),
        "identifiers": [{
            "id": i.id, "target_forms": list(i.target_forms), "reference_forms": list(i.reference_forms),
            "token_forms": None if i.token_forms is None else {k: list(v) for k, v in i.token_forms.items()},
            "n_prompts": i.n_prompts, "slots": slots(i.slots),
            "templates": [{"id": t.id, "text": t.text, "slots": slots(t.slots)} for t in i.templates],
        } for i in suite.identifiers],
    }
    if suite.min_prompts != MIN_DISTINCT_PROMPTS:  # only when set: the digests of other suites are unchanged
        plain["min_prompts"] = suite.min_prompts
    return plain


# --------------------------------------------------------------------------- parsing + validation
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
    for ref in _slot_refs(text):
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
    for key in sorted(set(data) - _SUITE_KEYS, key=str):
        report.add(str(key), f"unknown field {key!r} (allowed: {sorted(_SUITE_KEYS)})")
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
        for key in sorted(set(raw) - _IDENT_KEYS, key=str):
            report.add(f"{entry}.{key}", f"unknown field {key!r} (allowed: {sorted(_IDENT_KEYS)})")
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
            for key in sorted(set(rt) - _TEMPLATE_KEYS, key=str):
                report.add(f"{tentry}.{key}", f"unknown field {key!r} (allowed: {sorted(_TEMPLATE_KEYS)})")
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
            n_cursor = sum(1 for r in _slot_refs(text) if r == "@")
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
            rendered = suite._render_identifier(spec, want, 0)
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
        target, reference = suite._token_set_pair(spec, tokenizer)
        if not target:
            report.add(entry, "empty target token set")
        if not reference:
            report.add(entry, "empty reference token set")
        shared = target & reference
        if shared:
            toks = ", ".join(repr(_decode_one(tokenizer, t)) for t in sorted(shared))
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
                    piece = _decode_one(tokenizer, ids[0])
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
    report = ValidationReport(path.name)
    data = _read(path, report)
    if report.errors:
        return None, report
    suite = _parse(data, report, path.stem, str(path))
    return suite, report


# --------------------------------------------------------------------------- discovery
def _builtin_dir() -> Path | None:
    try:
        return Path(str(resources.files("lensprobe._builtin_probes")))
    except (ModuleNotFoundError, TypeError):
        repo = Path(__file__).resolve().parent.parent / "probes"
        return repo if repo.is_dir() else None


def _yaml_files(directory: Path) -> dict[str, Path]:
    if not directory.is_dir():
        return {}
    return {p.stem: p for p in sorted(directory.iterdir()) if p.suffix in (".yaml", ".yml") and p.is_file()}


def _env_dirs() -> list[Path]:
    raw = os.environ.get(ENV_VAR, "")
    return [Path(p).expanduser() for p in raw.split(os.pathsep) if p.strip()]


def _entry_point_files() -> dict[str, Path]:
    """Suites registered by installed packages under the ``lensprobe.suites`` entry-point group.

    An entry point's object may be a module (every YAML file in its package directory is a suite),
    a path (str/Path: a YAML file named after the entry point, or a directory of YAML files), or a
    callable returning such a path.
    """
    from importlib.metadata import entry_points

    out: dict[str, Path] = {}
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        try:
            obj = ep.load()
        except Exception as exc:  # a broken plugin must not break lensprobe
            import warnings

            warnings.warn(f"cannot load suite entry point {ep.name!r} ({ep.value}): {exc}", stacklevel=2)
            continue
        if isinstance(obj, types.ModuleType):
            target = Path(obj.__file__).parent if getattr(obj, "__file__", None) else \
                Path(str(resources.files(obj.__name__)))
        else:
            target = Path(obj() if callable(obj) else obj)
        if target.is_dir():
            for stem, p in _yaml_files(target).items():
                out.setdefault(stem, p)
        elif target.is_file():
            out.setdefault(ep.name, target)
    return out


def _sources(search_path: Sequence[str | os.PathLike] | None) -> list[tuple[str, dict[str, Path]]]:
    sources: list[tuple[str, dict[str, Path]]] = []
    for d in list(search_path or []) + _env_dirs():
        sources.append((str(d), _yaml_files(Path(d))))
    builtin = _builtin_dir()
    if builtin is not None:
        sources.append(("built-in", _yaml_files(builtin)))
    sources.append(("entry points", _entry_point_files()))
    return sources


def list_suites(*, search_path: Sequence[str | os.PathLike] | None = None) -> list[str]:
    """Names of every suite available: ``search_path`` dirs, ``$LENSPROBE_SUITES_PATH``, built-in, entry points."""
    names: set[str] = set()
    for _, files in _sources(search_path):
        names.update(files)
    return sorted(names)


def resolve_suite_path(name_or_path: str | os.PathLike, *,
                       search_path: Sequence[str | os.PathLike] | None = None) -> Path:
    """The YAML file a suite name or path refers to (first match in the order of :func:`list_suites`)."""
    p = Path(name_or_path)
    if p.suffix in (".yaml", ".yml") or p.is_file() or os.sep in str(name_or_path):
        if not p.is_file():
            raise FileNotFoundError(f"suite file {str(p)!r} does not exist")
        return p
    name = str(name_or_path)
    for _, files in _sources(search_path):
        if name in files:
            return files[name]
    raise KeyError(f"unknown suite {name!r}; available: {list_suites(search_path=search_path)} "
                   f"(or pass a path to a YAML file, or add a directory to ${ENV_VAR})")


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
        report = ValidationReport(Path(suite.path).name if suite.path else suite.name)
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
