"""Rendering: prompts from templates.

Each identifier's templates are filled with slot values drawn by an RNG seeded from
``(seed, language, identifier)`` and cut at the :data:`~lensprobe.suites.schema.CURSOR`, so every
prompt ends exactly where the identifier is to be written (:class:`SuiteItem`).  A slot value may
itself hold ``{{slot}}`` references (up to 8 levels); a slot is looked up in the template, then the
identifier, then the suite.  Prompts do not repeat: a template that keeps producing prompts already
seen is dropped after 200 misses.
"""
from __future__ import annotations

import random
import re
from dataclasses import dataclass
from typing import Any, Callable, Mapping

from lensprobe.suites.schema import CURSOR, IdentifierSpec, Template
from lensprobe.suites.tokens import split_form

__all__ = ["SuiteItem", "SLOT_RE", "slot_refs", "render_text", "render_identifier"]

#: A ``{{...}}`` reference: a slot name, ``name.field``, or ``@`` (the cursor).
SLOT_RE = re.compile(r"\{\{\s*([^{}]*?)\s*\}\}")
#: A template that renders an already-seen prompt this many times is dropped.
_MAX_MISSES = 200


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


def slot_refs(text: str) -> list[str]:
    """The references in ``text`` in order (``"@"`` for the cursor)."""
    return [m.group(1) for m in SLOT_RE.finditer(text)]


def render_text(text: str, lookup: Callable[[str], str], depth: int = 0) -> str:
    """``text`` with every slot reference replaced by ``lookup(ref)`` (itself rendered); the cursor stays."""
    if depth > 8:
        raise ValueError("slot values nest deeper than 8 levels (cycle?)")

    def sub(m: re.Match) -> str:
        ref = m.group(1)
        if ref == "@":
            return CURSOR
        return render_text(lookup(ref), lookup, depth + 1)

    return SLOT_RE.sub(sub, text)


def _render_template(template: Template, scopes: tuple[Mapping[str, tuple], ...], rng: random.Random) -> str:
    """One rendering of ``template``; each slot is drawn once per rendering (``{{x}}`` twice is one value)."""
    chosen: dict[str, Any] = {}

    def lookup(ref: str) -> str:
        name, _, fld = ref.partition(".")
        if name not in chosen:
            values = next((scope[name] for scope in scopes if name in scope), None)
            if not values:
                raise KeyError(f"unknown slot {{{{{ref}}}}}")
            chosen[name] = values[rng.randrange(len(values))]
        value = chosen[name]
        if fld:
            return str(value[fld])
        return str(value)

    return render_text(template.text, lookup)


def render_identifier(spec: IdentifierSpec, n: int, seed: int, *, language: str,
                      suite_slots: Mapping[str, tuple]) -> list[tuple[str, str, str]]:
    """Up to ``n`` distinct ``(template_id, prompt, suffix)`` of one identifier, deterministic in ``seed``.

    Templates are visited round-robin in an order shuffled by the RNG; ``prompt`` is the text before
    the cursor, ``suffix`` the text after it.
    """
    rng = random.Random(f"{seed}|{language}|{spec.id}")
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
            text = _render_template(template, (template.slots, spec.slots, suite_slots), rng)
            prompt, _, suffix = text.partition(CURSOR)
            if prompt in seen:
                misses[template.id] += 1
                if misses[template.id] >= _MAX_MISSES:
                    live.remove(template)
                continue
            seen.add(prompt)
            out.append((template.id, prompt, suffix))
    return out
