from __future__ import annotations

import functools
import json

import numpy as np
import pytest
import torch

torch.set_num_threads(2)


def make_streams(seed: int = 0, n_tokens: int = 600, vocab: int = 101):
    """Two 'languages' with different token distributions (ids >= 3 avoid pad/bos/eos)."""
    rng = np.random.default_rng(seed)
    return {"python": rng.integers(3, 60, n_tokens), "php": rng.integers(40, vocab, n_tokens)}


def ragged_sequences(seed: int = 0, n: int = 7, vocab: int = 101, max_len: int = 23):
    rng = np.random.default_rng(seed)
    return [rng.integers(3, vocab, int(rng.integers(2, max_len))) for _ in range(n)]


@pytest.fixture
def streams():
    return make_streams()


@pytest.fixture
def make_streams_fn():
    return make_streams


@pytest.fixture
def ragged_fn():
    return ragged_sequences


@functools.lru_cache(maxsize=None)
def _cached_model(model_type: str, seed: int):
    from lensprobe.testing import tiny_model

    return tiny_model(model_type, seed=seed)


@pytest.fixture
def tiny():
    """tiny_model(model_type, seed) built once per session (tests never modify the weights)."""
    return _cached_model


def _write_token_store(path, streams):
    from pretrain.tokens import LanguageTokens, SplitStats, TokenManifest

    path.mkdir(parents=True, exist_ok=True)
    langs = {}
    for lang, arr in streams.items():
        arr = np.asarray(arr, dtype=np.uint16)
        (path / f"{lang}.bin").write_bytes(arr[::-1].copy().tobytes())
        (path / f"{lang}.val.bin").write_bytes(arr.tobytes())
        langs[lang] = LanguageTokens(lang, SplitStats(f"{lang}.bin", len(arr), 1, len(arr)),
                                     SplitStats(f"{lang}.val.bin", len(arr), 1, len(arr)))
    manifest = TokenManifest(tokenizer_hash="x", dtype="uint16", eos_token_id=2, vocab_size=101, languages=langs)
    (path / "manifest.json").write_text(json.dumps(manifest.to_dict()))
    return path


@pytest.fixture
def write_token_store():
    """write_token_store(path, {lang: ids}): a pretrain token store (val = ids, train = reversed ids)."""
    return _write_token_store


@pytest.fixture(scope="session")
def run_dir(tmp_path_factory):
    """A run of three tiny GPT-2 checkpoints (steps 0, 10, 20) and a token store for python/php."""
    from lensprobe.testing import tiny_model

    root = tmp_path_factory.mktemp("lape_run")
    run = root / "toy-run"
    for i, step in enumerate([0, 10, 20]):
        tiny_model("gpt2", seed=10 + i).save_pretrained(run / f"checkpoint-{step}")
    store = _write_token_store(root / "tokens", make_streams(seed=4, n_tokens=400))
    return run, store
