"""The loaded suite: lookup, rendering, token sets and the content digest of one identifier suite."""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

from lensprobe.suites.rendering import SuiteItem, render_identifier
from lensprobe.suites.schema import DEFAULT_N_PROMPTS, MIN_DISTINCT_PROMPTS, IdentifierSpec
from lensprobe.suites.tokens import TokenSets, identifier_token_sets

__all__ = ["Suite"]


@dataclass(frozen=True)
class Suite:
    """A loaded identifier suite: identifier pairs with their templates (:mod:`lensprobe.suites`).

    >>> from lensprobe.suites import load_suite
    >>> suite = load_suite("php")
    >>> items = suite.render(seed=0, limit=2)          # two prompts per identifier
    >>> len(items) == 2 * len(suite)
    True
    """

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
        blob = json.dumps(self.to_dict(), sort_keys=True).encode()
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
            for k, (tid, prompt, suffix) in enumerate(self.render_identifier(spec, n, seed=seed)):
                items.append(SuiteItem(self.language, spec.id, tid, k, prompt, suffix,
                                       spec.target_forms, spec.reference_forms))
        return items

    def render_identifier(self, spec: IdentifierSpec, n: int, *, seed: int = 0) -> list[tuple[str, str, str]]:
        """Up to ``n`` distinct ``(template_id, prompt, suffix)`` of ``spec`` (see :mod:`lensprobe.suites.rendering`)."""
        return render_identifier(spec, n, seed, language=self.language, suite_slots=self.slots)

    # -- tokens
    def token_sets(self, tokenizer: Any) -> dict[str, TokenSets]:
        """Per identifier: the first-token sets of the target and reference forms, and whether they collide.

        By default a form contributes the first token of ``core`` and of ``" " + core``, where core is
        the form without leading punctuation (``.append`` -> ``append``; ``&&`` stays ``&&``).
        ``token_forms`` in the YAML replaces this with exact strings (first token of each, as written).
        """
        return {spec.id: TokenSets(spec.id, *identifier_token_sets(spec, tokenizer)) for spec in self.identifiers}

    def to_dict(self) -> dict[str, Any]:
        """The suite as plain data (the schema's field names; the input of :meth:`digest`)."""
        def slots(s):
            return {k: list(v) for k, v in sorted(s.items())}

        plain = {
            "language": self.language, "reference_language": self.reference_language, "version": self.version,
            "n_prompts": self.n_prompts, "slots": slots(self.slots),
            "identifiers": [{
                "id": i.id, "target_forms": list(i.target_forms), "reference_forms": list(i.reference_forms),
                "token_forms": None if i.token_forms is None else {k: list(v) for k, v in i.token_forms.items()},
                "n_prompts": i.n_prompts, "slots": slots(i.slots),
                "templates": [{"id": t.id, "text": t.text, "slots": slots(t.slots)} for t in i.templates],
            } for i in self.identifiers],
        }
        if self.min_prompts != MIN_DISTINCT_PROMPTS:  # only when set: the digests of other suites are unchanged
            plain["min_prompts"] = self.min_prompts
        return plain
