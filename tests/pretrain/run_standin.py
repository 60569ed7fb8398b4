"""Subprocess entry for the kill/resume test: train a config YAML on stand-in data."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import standins  # noqa: E402
import yaml  # noqa: E402

from pretrain.config import budgets, from_dict  # noqa: E402
from pretrain.train import train  # noqa: E402

cfg = from_dict(yaml.safe_load(Path(sys.argv[1]).read_text()))
train(cfg, sys.argv[2], data=standins.prepared(budgets(cfg), context=cfg.data.context, seed=cfg.seed))
