"""One renderer module per language, found by name; pretrain reaches the Babel corpora without importing them."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

import pretrain.render as render
from lensprobe.languages import LANGUAGES, UnknownLanguageError
from pretrain.corpora import CORPUS_PLUGINS, corpus_kinds, open_corpus
from pretrain.programs import LIST_STR, Len, Var, generate_program
from pretrain.programs.pipeline import Concept, Step, Terminal

PRETRAIN = Path(render.__file__).resolve().parents[1]


@pytest.mark.parametrize("language", LANGUAGES)
def test_every_table_language_has_a_complete_renderer_module(language):
    module = render.language_module(language)
    assert module.__name__ == f"pretrain.render.{language}" and module.LANGUAGE == language
    assert module.RENDERER.language == language
    concept = Concept("zorb_quilt", "list", (Step("list", "filter_odd"),), Terminal("list", "count"), (([1, 2, 3], 2),))
    rendering = module.render_concept(concept)
    assert rendering.language == language and "zorb_quilt" in rendering.header
    assert set(module.TERMINAL_FORMS) == {"count", "length", "sum", "max", "min", "count_char"}
    assert render.render_program(generate_program(0, 0), language).endswith("\n")
    length = {"python": "len(item_names)", "php": "count($itemNames)", "csharp": "itemNames.Count",
              "go": "len(itemNames)", "cpp": "item_names.size()"}
    assert render.render_expression(Len(Var(("item", "names"), LIST_STR)), language) == length[language]


def test_unknown_languages_and_missing_modules_are_named(monkeypatch):
    with pytest.raises(UnknownLanguageError, match="'rust'"):
        render.language_module("rust")
    monkeypatch.setattr(render, "check_language", lambda name: name)  # a table entry without a module
    with pytest.raises(ValueError, match="'klingon' has no renderer: expected a module pretrain.render.klingon"):
        render.language_module("klingon")


def test_pretrain_never_imports_the_babel_package():
    """The corpus kind 'babel' is resolved by name (CORPUS_PLUGINS), so pretrain has no import edge to
    lensprobe.babel (which imports pretrain: that edge would be a cycle)."""
    offenders = []
    for path in sorted(PRETRAIN.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [node.module or ""] if isinstance(node, ast.ImportFrom) else \
                [a.name for a in node.names] if isinstance(node, ast.Import) else []
            offenders += [f"{path.name}:{node.lineno} {n}" for n in names if n.startswith("lensprobe.babel")]
    assert offenders == []
    assert "babel" in corpus_kinds() and CORPUS_PLUGINS["babel"] == "lensprobe.babel.corpus:babel_corpus"


def test_the_babel_kind_opens_the_babel_corpus():
    from lensprobe.babel.corpus import BabelCorpus

    spec = {"kind": "babel", "stage": "continual", "target": "go", "seed": 2,
            "splits": {"n_shared": 2, "n_python_only": 2, "n_target_only": 2, "n_control": 2}}
    corpus = open_corpus(spec)
    assert isinstance(corpus, BabelCorpus) and corpus.languages == ["python", "go"]
    with pytest.raises(ValueError, match="stage: required"):
        open_corpus({k: v for k, v in spec.items() if k != "stage"})


def test_a_plugin_that_cannot_be_loaded_is_named(monkeypatch):
    monkeypatch.setitem(CORPUS_PLUGINS, "nowhere", "lensprobe.no_such_module:make")
    with pytest.raises(ValueError, match="corpus kind 'nowhere': cannot load lensprobe.no_such_module:make"):
        open_corpus({"kind": "nowhere"})
