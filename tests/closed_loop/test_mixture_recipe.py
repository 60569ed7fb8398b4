"""The babel-mixture recipe: a base-started mixture run whose budgets come from a mixture file."""
from __future__ import annotations

import pytest

from lensprobe.demo import SHIPPED_BASE
from lensprobe.mixture_file import write_mixture
from pretrain.config import ConfigError, budgets, load_config


def test_budgets_come_from_the_mixture_file(tmp_path):
    mix = write_mixture(tmp_path / "m.yaml", {"php": 154_778, "python": 7_739}, extra={"eq3": {"share": 0.97}})
    cfg = load_config("babel-mixture", mixture=mix, overrides=[f"model.init_from={SHIPPED_BASE}"])
    assert budgets(cfg) == {"php": 154_778, "python": 7_739}
    assert cfg.data.corpus["stage"] == "continual" and cfg.model.init_from == str(SHIPPED_BASE)
    assert cfg.snapshots.schedule == "every" and cfg.snapshots.every >= 10**9   # only checkpoint-0 and the last
    with pytest.raises(ConfigError, match="data.tokens: give a token budget per language"):
        load_config("babel-mixture", overrides=[f"model.init_from={SHIPPED_BASE}"])
    with pytest.raises(ConfigError, match="model.n_layer: required .*model.init_from"):
        load_config("babel-mixture", mixture=mix)   # a mixture run starts from a base
    bad = write_mixture(tmp_path / "go.yaml", {"go": 1000})
    with pytest.raises(ConfigError, match=r"language 'go' is not in data.languages"):
        budgets(load_config("babel-mixture", mixture=bad, overrides=[f"model.init_from={SHIPPED_BASE}"]))
