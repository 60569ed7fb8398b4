"""Concept functions for the synthetic Babel benchmark (docs/babel.md): drawing them, and their
renderings and executable tests per language.

A *concept* is a made-up function name (``tally_odd``-like, but from nonsense syllables so it
carries no prior meaning) whose body is a pipeline of 1-3 primitive steps and a terminal, e.g.
keep odd values -> double each -> sort -> count (the model: :mod:`pretrain.programs.pipeline`).
Each concept has one canonical rendering per language of :mod:`lensprobe.languages`, spelled by
that language's module in :mod:`pretrain.render`, a reference evaluator in Python, and test cases
that can be executed in every language.

The canonical body is what a model must reproduce; its lines are the unit of *line accuracy*.
Python concepts additionally have alternative surface forms (nested lambda, a comment stating the
pipeline: :func:`pretrain.render.python.python_surface`) used to augment the Python base corpus:
knowledge stored in one surface form is not extractable in another (docs/babel.md), so the base
run must see several.
"""
from __future__ import annotations

import random
from typing import Any, Sequence

from lensprobe.languages import LANGUAGES
from pretrain.programs.pipeline import LIST_STEPS, LIST_TERMINALS, STR_STEPS, STR_TERMINALS, Concept, Step, Terminal
from pretrain.render import language_module
from pretrain.render.base import Rendering

__all__ = ["make_name", "random_pipeline", "random_concept", "make_concepts", "concept_bodies", "structure_key", "render",
           "checking_program"]


# --------------------------------------------------------------------------------------------
# Random concepts
# --------------------------------------------------------------------------------------------

_ONSETS = ("b", "d", "f", "g", "k", "l", "m", "n", "p", "r", "s", "t", "v", "z", "br", "dr", "gl", "kr",
           "pl", "sn", "st", "tr", "zw", "qu", "th", "sk")
_VOWELS = ("a", "e", "i", "o", "u", "ai", "ou", "ee", "oa")
_CODAS = ("", "b", "d", "g", "k", "l", "m", "n", "p", "r", "rt", "sk", "st", "x", "z", "nd")


def _syllable(rng: random.Random) -> str:
    return rng.choice(_ONSETS) + rng.choice(_VOWELS) + rng.choice(_CODAS)


def make_name(rng: random.Random) -> str:
    """A nonsense snake_case name of two parts (``zorb_quilt``): legal in all five languages."""
    return f"{_syllable(rng)}{_syllable(rng)}_{_syllable(rng)}"


_RESERVED = {"int", "for", "var", "func", "new", "map", "max", "min", "sum", "len", "sort", "string", "count",
             "list", "range", "true", "false", "null", "nil", "none", "go", "do", "if", "else"}


def _random_step(rng: random.Random, domain: str) -> Step:
    if domain == "list":
        kind = rng.choice(LIST_STEPS)
        arg = {"filter_gt": rng.randint(0, 5), "map_add": rng.randint(1, 9), "take": rng.randint(2, 4),
               "drop": rng.randint(1, 2)}.get(kind)
        return Step("list", kind, arg)
    kind = rng.choice(STR_STEPS)
    arg = None
    if kind == "replace":
        a = rng.choice("aeiou")
        b = rng.choice([c for c in "xyz-"])
        arg = (a, b)
    return Step("str", kind, arg)


def _random_input(rng: random.Random, domain: str) -> Any:
    if domain == "list":
        return [rng.randint(-5, 12) for _ in range(rng.randint(3, 8))]
    words = ["data", "code", "lane", "mode", "pure", "note", "tree", "unit", "area", "idea"]
    text = " ".join(rng.choice(words) for _ in range(rng.randint(1, 3)))
    if rng.random() < 0.5:
        text = text.title()
    return " " * rng.randint(0, 2) + text + " " * rng.randint(0, 2)


def random_pipeline(rng: random.Random, name: str, *, max_steps: int = 3) -> Concept:
    """A concept without test cases: 1..max_steps distinct step kinds and a terminal (cheap; the
    filler's throwaway functions)."""
    while True:
        domain = "list" if rng.random() < 0.75 else "str"
        steps = tuple(_random_step(rng, domain) for _ in range(rng.randint(1, max_steps)))
        if len({s.kind for s in steps}) < len(steps):
            continue  # no repeated step kinds: keeps pipelines distinct and readable
        if domain == "list":
            terminal = Terminal("list", rng.choice(LIST_TERMINALS))
        else:
            kind = rng.choice(STR_TERMINALS)
            terminal = Terminal("str", kind, rng.choice("aeo") if kind == "count_char" else None)
        return Concept(name, domain, steps, terminal)


def random_concept(rng: random.Random, name: str, *, n_cases: int = 4, max_steps: int = 3) -> Concept:
    """A concept whose pipeline has 1..max_steps steps and whose test cases are non-degenerate."""
    if n_cases < 2:
        raise ValueError(f"n_cases: expected >= 2 (the tests must tell pipelines apart), got {n_cases}")
    while True:
        concept = random_pipeline(rng, name, max_steps=max_steps)
        domain, steps, terminal = concept.domain, concept.steps, concept.terminal
        cases = []
        for _ in range(60):
            x = _random_input(rng, domain)
            try:
                y = concept.evaluate(x)
            except ValueError:  # max/min of an empty list: not a valid case
                continue
            cases.append((x, y))
            if len(cases) == n_cases:
                break
        outs = {repr(o) for _, o in cases}
        if len(cases) == n_cases and len(outs) >= 2:  # the tests must tell pipelines apart
            return Concept(name, domain, steps, terminal, tuple(cases))


def make_concepts(n: int, *, seed: int, n_cases: int = 4, max_tries: int = 1000) -> list[Concept]:
    """``n`` concepts with unique names, none a substring of another (so token scans are exact), and
    unique canonical bodies in every language (a concept whose body in any language equals one
    already drawn is redrawn, up to ``max_tries`` times per concept): no body line sequence is
    shared between two concepts, so a body never carries another concept's knowledge
    (docs/babel.md, "Splits")."""
    rng = random.Random(seed)
    names: list[str] = []
    while len(names) < n:
        name = make_name(rng)
        if any(part in _RESERVED for part in name.split("_")):
            continue
        if any(name in other or other in name for other in names):
            continue
        names.append(name)
    seen: dict[str, set[tuple[str, ...]]] = {lang: set() for lang in LANGUAGES}
    out: list[Concept] = []
    for name in names:
        for _ in range(max_tries):
            concept = random_concept(rng, name, n_cases=n_cases)
            bodies = {lang: render(concept, lang).body for lang in LANGUAGES}
            if not any(bodies[lang] in seen[lang] for lang in LANGUAGES):
                break
        else:
            raise ValueError(f"cannot draw {n} concepts with distinct bodies (stuck at {len(out)} after "
                             f"{max_tries} tries): ask for fewer concepts")
        for lang, body in bodies.items():
            seen[lang].add(body)
        out.append(concept)
    return out


def concept_bodies(concepts: Sequence[Concept], language: str) -> dict[str, str]:
    """Body text of each concept in ``language`` as it appears in documents (the body lines joined
    by newlines, without header and footer), keyed by concept name."""
    return {c.name: "\n".join(render(c, language).body) for c in concepts}


def structure_key(concept: Concept) -> tuple[Any, ...]:
    """What a concept's body is made of, coarsest first: step count, domain, terminal, steps.
    Sorting by it puts structurally alike concepts next to each other (the split assignment's blocks)."""
    return (len(concept.steps), concept.domain, concept.terminal.kind,
            tuple((s.kind, repr(s.arg)) for s in concept.steps))


# --------------------------------------------------------------------------------------------
# Canonical renderings and executable tests (spelled by each language's module in pretrain.render)
# --------------------------------------------------------------------------------------------

def render(concept: Concept, language: str) -> Rendering:
    """The canonical rendering of ``concept`` in ``language`` (a canonical name)."""
    return language_module(language).render_concept(concept)


def checking_program(concepts: Sequence[Concept], language: str, *, bodies: dict[str, str] | None = None) -> str:
    """One program defining ``concepts`` (canonical, or the texts in ``bodies`` by name) and
    checking every test case; it prints ``PASS <name>`` / ``FAIL <name>`` per concept and exits 0.

    A concept whose definition does not compile makes the whole program fail in compiled
    languages: evaluate generated code one concept per program there.
    """
    module = language_module(language)
    defs = [bodies[c.name] if bodies and c.name in bodies else module.render_concept(c).text for c in concepts]
    checks = [(c.name, [(f"{c.name}({module.literal(x)})", module.literal(y)) for x, y in c.cases]) for c in concepts]
    return module.checking_program(defs, checks)
