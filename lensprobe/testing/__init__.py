"""Test helpers that need no downloads, for tests, docs, notebooks and benchmarks.

- :mod:`lensprobe.testing.models`: tiny random models, a word-level tokenizer and runs of tiny checkpoints
  (re-exported here: ``from lensprobe.testing import build_tiny_run``);
- :mod:`lensprobe.testing.tables`: a synthetic sweep table with known curves, and a sweep directory of it;
- :mod:`lensprobe.testing.probes`: toy probes (one per protocol) for engine and sweep tests.
"""
from __future__ import annotations

from lensprobe.testing.models import TINY_CONFIGS, build_tiny_run, tiny_config, tiny_model, tiny_tokenizer

__all__ = ["TINY_CONFIGS", "build_tiny_run", "tiny_config", "tiny_model", "tiny_tokenizer"]
