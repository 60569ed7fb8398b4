"""The Babel control is a matched baseline: unique bodies, python_only and control alike by
construction, filler without any concept body (docs/babel.md, "Splits")."""
from __future__ import annotations

import collections
import itertools
import time

import pytest

from lensprobe.babel.corpus import BabelCorpus, ConceptScan
from lensprobe.babel.concepts import render
from lensprobe.babel.splits import make_splits
from lensprobe.languages import LANGUAGES
from pretrain.programs.pipeline import Concept

SEEDS = range(5)


def _body(concept, language):
    r = render(concept, language)
    return "\n".join(r.body)


@pytest.mark.parametrize("seed", SEEDS)
def test_every_body_is_unique_in_every_language(seed):
    splits = make_splits(seed=seed, targets=("php",))
    concepts = splits.all_concepts()
    assert len(concepts) == 160
    for language in LANGUAGES:
        bodies = collections.Counter(_body(c, language) for c in concepts)
        dup = {b: n for b, n in bodies.items() if n > 1}
        assert not dup, (seed, language, list(dup.items())[:2])


def test_unique_bodies_with_several_targets():
    splits = make_splits(seed=3, targets=("php", "csharp", "go", "cpp"))
    concepts = splits.all_concepts()
    assert len(concepts) == 40 * 3 + 40 * 4
    for language in LANGUAGES:
        assert len({_body(c, language) for c in concepts}) == len(concepts), language


def test_make_splits_is_deterministic_and_keyword_only():
    a = make_splits(seed=4, n_shared=10, n_python_only=12, n_target_only=10, n_control=12)
    b = make_splits(seed=4, n_shared=10, n_python_only=12, n_target_only=10, n_control=12)
    assert a.manifest() == b.manifest()
    assert [len(a.shared), len(a.python_only), len(a.target_only["php"]), len(a.control)] == [10, 12, 10, 12]
    with pytest.raises(TypeError):
        make_splits(4)  # noqa: the signature is keyword-only
    with pytest.raises(ValueError, match="n_cases"):
        make_splits(seed=0, n_cases=1)


def _positional_overlap(concepts, trained, language="php"):
    """Share of the body lines of ``concepts`` that some trained concept has at the same position."""
    seen = collections.defaultdict(set)
    for c in trained:
        for i, line in enumerate(render(c, language).body):
            seen[i].add(line)
    lines = [(i, line) for c in concepts for i, line in enumerate(render(c, language).body)]
    return sum(line in seen[i] for i, line in lines) / len(lines)


def _max_count_gap(a, b, key):
    ca, cb = collections.Counter(map(key, a)), collections.Counter(map(key, b))
    return max(abs(ca[k] - cb[k]) for k in set(ca) | set(cb))


@pytest.mark.parametrize("seed", SEEDS)
def test_python_only_and_control_are_matched(seed):
    """Before the matched control: seed 0 had step counts 20/9/11 vs 20/10/10, seed 1 10/19/11 vs
    19/12/9, and PHP line overlap 0.867 vs 0.784 at seed 0 (the issue's measurement)."""
    s = make_splits(seed=seed, targets=("php",))
    po, ctl = s.python_only, s.control
    assert _max_count_gap(po, ctl, lambda c: len(c.steps)) <= 1
    assert _max_count_gap(po, ctl, lambda c: c.terminal.kind) <= 1
    assert _max_count_gap(po, ctl, lambda c: c.domain) <= 2
    trained = s.shared + s.target_only["php"]
    assert abs(_positional_overlap(po, trained) - _positional_overlap(ctl, trained)) <= 0.02


def test_matched_over_seeds_in_every_target():
    """Averaged over seeds, python_only and control agree on what the target trains (each target)."""
    gaps = collections.defaultdict(list)
    for seed in range(3):
        s = make_splits(seed=seed, targets=("php", "csharp"))
        for target in s.targets:
            trained = s.shared + s.target_only[target]
            gaps[target].append(_positional_overlap(s.python_only, trained, target)
                                - _positional_overlap(s.control, trained, target))
            # the body lengths (lines) match as well
            n = lambda cs: sum(len(render(c, target).body) for c in cs) / len(cs)  # noqa: E731
            assert abs(n(s.python_only) - n(s.control)) < 0.25, (seed, target)
    for target, g in gaps.items():
        assert max(map(abs, g)) <= 0.02, (target, g)


def test_splits_are_exchangeable_in_law():
    """Which structures go to python_only rather than control is a coin flip: over many small
    splits, a concept of each step count is as often in one as in the other."""
    counts = collections.Counter()
    for seed in range(60):
        s = make_splits(seed=seed, n_shared=4, n_python_only=4, n_target_only=4, n_control=4)
        for split in ("python_only", "control"):
            for c in s.split(split):
                counts[(split, len(c.steps))] += 1
    for k in (1, 2, 3):
        a, b = counts[("python_only", k)], counts[("control", k)]
        assert abs(a - b) <= 3 * (a + b) ** 0.5, (k, a, b)


# ------------------------------------------------------------------------------------------ filler

@pytest.fixture(scope="module")
def splits0():
    return make_splits(seed=0, targets=("php",))


def test_no_concept_body_in_thousands_of_filler_documents(splits0):
    """Before the fix, 81 concept bodies appeared verbatim in the first 1,500 base-stage PHP filler
    documents. The scan here is independent of ConceptScan: plain substring search per body."""
    corpus = BabelCorpus(splits0, stage="base", target="php")
    t0 = time.perf_counter()
    docs = [d.text for d in itertools.islice(corpus.documents("php"), 3000)]
    bodies = [_body(c, "php") for c in splits0.all_concepts()]
    names = [c.name for c in splits0.all_concepts()]
    found = [b for d in docs for b in bodies if b in d] + [n for d in docs for n in names if n in d]
    assert not found, found[:3]
    assert time.perf_counter() - t0 < 60
    # both halves are there: general programs and throwaway pipeline functions in PHP idioms
    pipelines = [d for d in docs if d.startswith("<?php\n\nfunction ") and "echo " not in d]
    assert 1300 < len(pipelines) < 1700 and sum("echo " in d for d in docs) > 1300


def test_pipeline_filler_redraws_concept_bodies(splits0, monkeypatch):
    """The throwaway half draws random pipelines; one that renders a concept's body is redrawn."""
    import lensprobe.babel.corpus as corpus_module

    target = splits0.python_only[0]
    real = corpus_module.random_pipeline
    calls = {"n": 0}

    def rigged(rng, name, **kw):  # every third pipeline is a concept's (under a throwaway name)
        calls["n"] += 1
        c = real(rng, name, **kw)
        if calls["n"] % 3 == 0:
            return Concept(name, target.domain, target.steps, target.terminal)
        return c

    monkeypatch.setattr(corpus_module, "random_pipeline", rigged)
    corpus = BabelCorpus(splits0, stage="base", target="php")
    docs = list(itertools.islice(corpus.pipeline_filler("php"), 200))
    assert calls["n"] > 600
    assert not any(_body(target, "php") in d for d in docs)
    assert sum(d.count("\nfunction ") for d in docs) >= 600


def test_filler_documents_with_a_concept_body_are_dropped(splits0):
    concept = splits0.control[5]
    planted = "<?php\n\nfunction helper($xs) {\n" + _body(concept, "php") + "\n}\n"
    indented = "<?php\nclass A {\n    function helper($xs) {\n    " + _body(concept, "php") + "\n}\n}\n"
    clean = [f"<?php\necho {i};\n" for i in range(5)]
    stream = [clean[0], planted, clean[1], indented, clean[2], f"<?php\n// {splits0.shared[0].name}\n", clean[3]]
    corpus = BabelCorpus(splits0, stage="base", target="php", filler=lambda lang: iter(stream))
    got = [d.text for d in corpus.documents("php")]
    assert got == clean[:4]


def test_concept_scan_finds_bodies_and_names(splits0):
    scan = ConceptScan(splits0.all_concepts(), "php")
    c = splits0.python_only[3]
    text = "<?php\n\n" + render(c, "php").text.replace(c.name, "other_name")
    assert scan.found(text) == [c.name]
    assert scan.found("function " + splits0.control[1].name + "() {}") == [splits0.control[1].name]
    assert scan.found("<?php\necho 1;\n") == []
    assert scan.clashes_with_name(splits0.shared[0].name + "x")
