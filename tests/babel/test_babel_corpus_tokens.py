"""The real Babel corpora (the babel-base / babel-continual recipes' corpus specs: split seed 0,
40 concepts per split) through the real pipeline (a byte-level BPE tokenizer, tokenize_corpus): the
token files, decoded back to text, carry no concept body or name where none may be — the base
stage's target-language filler none at all (its whole 120k-token budget is scanned), the continual
target corpus no python_only or control concept — and bad recipes fail before training with the
field named."""
from __future__ import annotations

import numpy as np
import pytest

from lensprobe.babel.concepts import render

PHP_BASE_TOKENS = 120_000         # the babel-base recipe's whole PHP filler budget
PHP_CONTINUAL_TOKENS = 150_000
PYTHON_TOKENS = 60_000


def _bodies(concepts, language):
    return {c.name: "\n".join(render(c, language).body) for c in concepts}


@pytest.fixture(scope="module")
def stores(tmp_path_factory):
    import yaml

    from lensprobe.demo import SHIPPED_BASE
    from pretrain.config import load_config
    from pretrain.corpora import open_corpus
    from pretrain.tokenizer import train_tokenizer
    from pretrain.tokens import TokenStore, tokenize_corpus

    root = tmp_path_factory.mktemp("babel-tokens")
    corpora = {}
    for stage, recipe in (("base", "babel-base"), ("continual", "babel-continual")):
        overrides = [f"model.init_from={SHIPPED_BASE}"] if stage == "continual" else []
        spec = yaml.safe_load(load_config(recipe, overrides=overrides).to_yaml())["data"]["corpus"]
        assert spec["stage"] == stage and spec["seed"] == 0
        corpora[stage] = open_corpus(spec, languages=["python", "php"])
    tok = train_tokenizer(corpora["base"], languages=["python", "php"], vocab_size=2048,
                          sample_bytes_per_language=200_000, out_dir=root / "tok")
    out = {}
    for stage, php_tokens in (("base", PHP_BASE_TOKENS), ("continual", PHP_CONTINUAL_TOKENS)):
        tokenize_corpus(corpora[stage], tok, root / stage, validation_tokens_per_language=4_000,
                        tokens_per_language={"python": PYTHON_TOKENS, "php": php_tokens})
        out[stage] = TokenStore(root / stage)
    return corpora["base"].splits, tok, out


def _text(tok, store, language):
    """The token files of ``language`` (train and validation) decoded back to text."""
    parts = []
    for split in ("train", "val"):
        ids = np.asarray(store.tokens(language, split))
        assert ids.size > 1000, (language, split)
        parts.append(tok.decode(ids.tolist()))
    return "\n".join(parts)


def test_the_scanned_corpus_is_the_recipes(stores):
    splits, _, _ = stores
    assert [len(splits.shared), len(splits.python_only), len(splits.target_only["php"]), len(splits.control)] \
        == [40, 40, 40, 40]


def test_base_filler_carries_no_concept_body_or_name(stores):
    splits, tok, out = stores
    php = _text(tok, out["base"], "php")
    assert len(php) > 300_000
    found = [n for n, b in _bodies(splits.all_concepts(), "php").items() if b in php]
    found += [c.name for c in splits.all_concepts() if c.name in php]
    assert not found, found
    assert "array_map(fn($x)" in php and "return count($ys);" in php  # the pipeline idioms are there


def test_continual_target_corpus_has_no_python_only_or_control_body(stores):
    splits, tok, out = stores
    php = _text(tok, out["continual"], "php")
    forbidden = splits.python_only + splits.control
    assert not [n for n, b in _bodies(forbidden, "php").items() if b in php]
    assert not [c.name for c in forbidden if c.name in php]
    # positive control: the scan finds the bodies the corpus does carry
    trained = _bodies(splits.shared + splits.target_only["php"], "php")
    assert sum(b in php for b in trained.values()) >= 0.9 * len(trained)


def test_python_corpora_have_no_control_or_target_only_body(stores):
    splits, tok, out = stores
    forbidden = splits.control + splits.target_only["php"]
    for stage, store in out.items():
        py = _text(tok, store, "python")
        assert not [n for n, b in _bodies(forbidden, "python").items() if b in py], stage
        assert not [c.name for c in forbidden if c.name in py], stage
        assert sum(c.name in py for c in splits.python_only) >= 30, stage


@pytest.mark.parametrize("override, field", [
    ("data.corpus.splits.n_bogus=3", "n_bogus"),
    ("data.corpus.target=rust", "rust"),
    ('data.languages=["python", "go"]', "go"),
    ("data.tokens.go=1000", "data.tokens.go"),
    ("data.corpus.stage=middle", "stage"),
    ('data.corpus={"kind": "babel", "target": "php", "seed": 0}', "stage: required"),
])
def test_bad_babel_recipes_fail_before_training_naming_the_field(override, field):
    from pretrain.config import ConfigError, load_config

    with pytest.raises(ConfigError) as exc:
        load_config("babel-base", overrides=[override])
    assert field in str(exc.value)
    assert "data." in str(exc.value)
