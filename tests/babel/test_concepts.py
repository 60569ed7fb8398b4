"""Babel concepts and splits: reproducible, disjoint, executable in every language."""
import collections
import os
import random
import shutil
import subprocess

import pytest

from lensprobe.babel.concepts import checking_program, make_concepts, render
from lensprobe.babel.corpus import DEFAULT_SURFACE_WEIGHTS, BabelCorpus
from lensprobe.babel.splits import BabelSplits, make_splits
from lensprobe.languages import LANGUAGE_INFO, LANGUAGES
from pretrain.programs.pipeline import Concept
from pretrain.render.python import python_surface


def _run(language, program, tmp_path):
    env = {**os.environ, "GOCACHE": str(tmp_path / "gocache"), "GO111MODULE": "off"}
    if language == "python":
        src = tmp_path / "t.py"; src.write_text(program)
        return subprocess.run(["python3", str(src)], capture_output=True, text=True, timeout=120)
    if language == "php":
        src = tmp_path / "t.php"; src.write_text(program)
        return subprocess.run(["php", str(src)], capture_output=True, text=True, timeout=120)
    if language == "go":
        src = tmp_path / "t.go"; src.write_text(program)
        return subprocess.run(["go", "run", str(src)], capture_output=True, text=True, timeout=300, env=env)
    if language == "cpp":
        src = tmp_path / "t.cpp"; src.write_text(program)
        subprocess.run(["g++", "-O0", "-o", str(tmp_path / "t"), str(src)], check=True, timeout=300)
        return subprocess.run([str(tmp_path / "t")], capture_output=True, text=True, timeout=60)
    if language == "csharp":
        src = tmp_path / "t.cs"; src.write_text(program)
        subprocess.run(["mcs", "-out:" + str(tmp_path / "t.exe"), str(src)], check=True, timeout=300,
                       capture_output=True)
        return subprocess.run(["mono", str(tmp_path / "t.exe")], capture_output=True, text=True, timeout=60)
    raise ValueError(language)


@pytest.mark.parametrize("language", LANGUAGES)
def test_every_canonical_rendering_passes_its_tests(language, tmp_path):
    missing = [t for t in LANGUAGE_INFO[language].tools if shutil.which(t) is None]
    if missing:
        pytest.skip(f"{missing} not installed")
    splits = make_splits(seed=0, targets=("php", "csharp", "go", "cpp"), n_shared=10, n_python_only=10,
                         n_target_only=5, n_control=10)
    concepts = splits.all_concepts()
    res = _run(language, checking_program(concepts, language), tmp_path)
    assert res.returncode == 0, res.stderr[-2000:]
    verdicts = dict(line.split()[::-1] for line in res.stdout.splitlines() if line.strip())
    assert set(verdicts) == {c.name for c in concepts}
    assert set(verdicts.values()) == {"PASS"}


def test_wrong_body_fails_its_tests(tmp_path):
    c = make_concepts(1, seed=3)[0]
    wrong = render(c, "python").text.replace("return ", "return 1 + ")
    res = _run("python", checking_program([c], "python", bodies={c.name: wrong}), tmp_path)
    assert res.stdout.split() == ["FAIL", c.name]


def test_reference_evaluator_matches_python_rendering():
    for c in make_concepts(30, seed=7):
        ns: dict = {}
        exec(render(c, "python").text, ns)
        lam: dict = {}
        exec(python_surface(c, "lambda", random.Random(0)), lam)
        exec(python_surface(c, "lambda", random.Random(1)), lam)
        for x, y in c.cases:
            assert ns[c.name](x) == y == c.evaluate(x) == lam[c.name](x)


def test_splits_are_disjoint_and_reproducible():
    a = make_splits(seed=5, targets=("php", "go"))
    b = make_splits(seed=5, targets=("php", "go"))
    c = make_splits(seed=6, targets=("php", "go"))
    assert a.manifest() == b.manifest()
    assert a.manifest() != c.manifest()
    names = [x.name for x in a.all_concepts()]
    assert len(names) == len(set(names)) == 40 * 3 + 40 * 2
    for n1 in names:  # no name inside another: token scans for a name are exact
        assert sum(n1 in n2 for n2 in names) == 1
    assert a.split_of(a.control[0].name) == "control"
    assert a.split_of(a.target_only["go"][0].name) == "target_only"


def test_manifest_round_trip(tmp_path):
    s = make_splits(seed=1, n_shared=3, n_python_only=2, n_target_only=2, n_control=2)
    path = s.save(tmp_path / "splits.json")
    t = BabelSplits.load(path)
    assert t.manifest() == s.manifest()
    assert [c.cases for c in t.all_concepts()] == [c.cases for c in s.all_concepts()]
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(ValueError, match="bad.json"):
        BabelSplits.load(tmp_path / "bad.json")


def test_bad_split_arguments_name_the_field():
    with pytest.raises(ValueError, match="targets: unknown target language 'rust'"):
        make_splits(targets=("rust",))
    with pytest.raises(ValueError, match="n_shared"):
        make_splits(n_shared=-1)
    s = make_splits(seed=0, n_shared=2, n_python_only=2, n_target_only=2, n_control=2)
    with pytest.raises(ValueError, match="unknown split"):
        s.split("nope")
    with pytest.raises(ValueError, match="surface_weights: unknown form"):
        BabelCorpus(s, stage="base", surface_weights={"def": 1.0, "prose": 1.0})
    with pytest.raises(ValueError, match="stage"):
        BabelCorpus(s, stage="middle")


def test_corpus_documents_respect_splits_and_surface_weights():
    s = make_splits(seed=2, n_shared=10, n_python_only=10, n_target_only=10, n_control=10)
    corpus = BabelCorpus(s, stage="continual", target="php", seed=0)
    py_only = {c.name for c in s.python_only}
    control = {c.name for c in s.control}
    php_docs = [d.text for _, d in zip(range(200), corpus.documents("php"))]
    py_docs = [d.text for _, d in zip(range(400), corpus.documents("python"))]
    for text in php_docs:
        assert not any(n in text for n in py_only | control)
        assert text.startswith("<?php")
    for text in py_docs:
        assert not any(n in text for n in control | {c.name for c in s.target_only["php"]})
    # surface forms: count defs / lambdas / comments over all concept occurrences
    counts = collections.Counter()
    for text in py_docs:
        for line in text.splitlines():
            if line.startswith("def make_") or " = lambda " in line:
                counts["lambda"] += 1
            elif line.startswith("def "):
                counts["def"] += 1
            elif line.startswith("# ") and "(" in line and ":" in line and "==" not in line:
                counts["comment"] += 1
    total = sum(counts.values())
    for form, w in DEFAULT_SURFACE_WEIGHTS.items():
        assert abs(counts[form] / total - w) < 0.04, (form, counts)
    # deterministic
    again = [d.text for _, d in zip(range(200), BabelCorpus(s, stage="continual", target="php").documents("php"))]
    assert again == php_docs


def test_base_stage_target_documents_are_concept_free_filler():
    s = make_splits(seed=2, n_shared=5, n_python_only=5, n_target_only=5, n_control=5)
    filler = lambda lang: iter([f"<?php\necho {i};\n" for i in range(1000)])  # noqa: E731
    corpus = BabelCorpus(s, stage="base", target="php", filler=filler)
    docs = [d for _, d in zip(range(10), corpus.documents("php"))]
    assert [d.text for d in docs] == [f"<?php\necho {i};\n" for i in range(10)]
    assert all(d.source.endswith(":filler") for d in docs)
