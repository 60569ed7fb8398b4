"""Shared helpers for the engine / lens / adapter tests (tiny random models, no downloads)."""
from __future__ import annotations

import functools

import pytest
import torch

from lensprobe.testing import tiny_model

@functools.lru_cache(maxsize=None)
def _cached(model_type: str, seed: int, tie: bool | None):
    return tiny_model(model_type, seed=seed, tie_word_embeddings=tie)


@pytest.fixture
def model_factory():
    """``model_factory(model_type, seed=0, tie=None)``: a cached tiny model (do not mutate it)."""

    def make(model_type: str, seed: int = 0, tie: bool | None = None):
        return _cached(model_type, seed, tie)

    return make

