"""Config parsing, recipes, overrides and the errors that must name the field."""
from pathlib import Path

import pytest
import yaml

from pretrain.config import (ConfigError, apply_overrides, available_recipes, budgets, differences_that_matter,
                             from_dict, load_config, parse_budget)


def test_builtin_recipes_are_discovered_and_valid(tmp_path):
    names = set(available_recipes())
    assert {"python-mono", "continual", "mixture"} <= names
    cfg = load_config("python-mono")
    assert cfg.run.recipe == "python-mono"
    assert (cfg.model.n_layer, cfg.model.n_embd, cfg.model.n_head) == (4, 128, 4)   # size: tiny resolved
    assert budgets(cfg) == {"python": 2_000_000}


def test_recipe_by_path_and_overrides(tmp_path):
    src = yaml.safe_load((Path(available_recipes()["python-mono"])).read_text())
    path = tmp_path / "my-recipe.yaml"
    path.write_text(yaml.safe_dump(src))
    cfg = load_config(path, overrides=["model.n_layer=2", "optim.lr=3e-4", "optim.betas=[0.8, 0.9]",
                                       "data.tokens.python=50k", "run.name=mine"])
    assert cfg.run.recipe == str(path)
    assert cfg.model.n_layer == 2 and cfg.model.n_embd == 128      # override beats the size preset
    assert cfg.optim.lr == pytest.approx(3e-4) and cfg.optim.betas == [0.8, 0.9]
    assert budgets(cfg) == {"python": 50_000}
    assert cfg.run.name == "mine"


@pytest.mark.parametrize("override, field", [
    ("optim.lr=fast", "optim.lr: expected a float, got 'fast'"),
    ("optim.bogus=1", "optim.bogus: unknown key"),
    ("bogus.key=1", "bogus: unknown key"),
    ("model.n_head=5", "model.n_head: n_embd=128 is not divisible"),
    ("data.languages=[python, klingon]", "data.languages[1]: unknown language 'klingon'"),
    ("data.tokens.python=lots", "data.tokens.python: expected a token count"),
    ("optim.schedule=linear", "optim.schedule: expected 'cosine' or 'constant'"),
    ("optim.batch_size=10", "optim.batch_size: 10 is not divisible by optim.grad_accum=4"),
    ("precision=fp8", "precision: expected auto|bf16|fp32"),
    ("model.size=huge", "model.size: unknown size 'huge'"),
])
def test_bad_values_name_the_field(override, field):
    extra = ["optim.grad_accum=4", "optim.batch_size=16"] if "batch_size=10" not in override else ["optim.grad_accum=4"]
    with pytest.raises(ConfigError) as err:
        load_config("python-mono", overrides=[*extra, override])
    assert str(err.value).startswith(field), str(err.value)


def test_missing_corpus_path_names_the_field(tmp_path):
    missing = tmp_path / "nope.jsonl"
    with pytest.raises(ConfigError, match=r"^data\.corpus\.path: no such file"):
        load_config("python-mono", overrides=["data.corpus.kind=jsonl", f"data.corpus.path={missing}"])
    with pytest.raises(ConfigError, match=r"^data\.mixture: no such file"):
        load_config("mixture", mixture=missing)
    with pytest.raises(ConfigError, match=r"^model\.init_from: .* is not a checkpoint directory"):
        load_config("continual", overrides=[f"model.init_from={tmp_path}"])
    with pytest.raises(ConfigError, match=r"^recipe: unknown recipe 'nope'"):
        load_config("nope")


def test_mixture_file_sets_the_budgets(tmp_path):
    mix = tmp_path / "mix.yaml"
    mix.write_text("tokens: {python: 100000, php: 5M}\nsource: fit\n")
    cfg = load_config("mixture", mixture=mix)
    assert budgets(cfg) == {"python": 100_000, "php": 5_000_000}
    mix.write_text("tokens: {python: 100000, rust: 5M}\n")
    with pytest.raises((ConfigError, ValueError), match="rust"):
        budgets(load_config("mixture", mixture=mix))


def test_parse_budget_and_overrides_are_pure():
    assert parse_budget("100M", "x") == 100_000_000
    assert parse_budget("2.5B", "x") == 2_500_000_000
    assert parse_budget("20k", "x") == 20_000
    assert parse_budget(1234, "x") == 1234
    assert parse_budget("4.1M", "x") == 4_100_000  # decimal, not float("4.1") * 1e6 = 4099999.9999999995
    with pytest.raises(ConfigError, match=r"^x: expected a token count like 100M \(not a token count: '1.2345k'"):
        parse_budget("1.2345k", "x")  # not a whole number of tokens
    with pytest.raises(ConfigError, match="x: token count must be positive"):
        parse_budget("0", "x")
    data = {"optim": {"lr": 1.0}}
    new = apply_overrides(data, ["optim.lr=2", "data.corpus.kind=files"])
    assert data == {"optim": {"lr": 1.0}} and new["optim"]["lr"] == 2 and new["data"]["corpus"] == {"kind": "files"}


def test_differences_that_matter_ignore_harmless_fields():
    a = load_config("python-mono").to_dict()
    b = load_config("python-mono", overrides=["threads=3", "resume.every=7"]).to_dict()
    assert differences_that_matter(a, b) == []
    c = load_config("python-mono", overrides=["optim.lr=0.5", "threads=3"]).to_dict()
    assert differences_that_matter(a, c) == ["optim.lr"]


def test_registered_recipe_directories_are_discovered_by_name(tmp_path, monkeypatch):
    import pretrain.config as config

    monkeypatch.setattr(config, "RECIPE_DIRS", list(config.RECIPE_DIRS))
    (tmp_path / "babel-test.yaml").write_text(yaml.safe_dump(
        {"run": {"name": "b"}, "data": {"tokens": {"python": "1M"}}, "model": {"size": "tiny"}}))
    with pytest.raises(ConfigError, match="unknown recipe 'babel-test'"):
        load_config("babel-test")
    config.register_recipe_dir(tmp_path)
    assert "babel-test" in available_recipes()
    cfg = load_config("babel-test")
    assert cfg.run.recipe == "babel-test" and budgets(cfg) == {"python": 1_000_000}
