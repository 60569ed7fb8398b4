"""Fixtures of the pretrain tests.

Data (corpora, filters, tokenizer, tokens, mixture, programs): ``tokenizer_dir``/``tokenizer``, a 2,048-token
tokenizer trained once per session on the embedded corpus.

Training (train, multiprocess, cli): ``one_thread`` (the training test modules request it); ``make_cfg``, the
tiny training config; ``prepared_dir``, its tokenizer and token store prepared once; ``seed_run_dir``, which
copies them into a run directory.
"""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

from lensprobe.languages import LANGUAGES
from pretrain.config import PretrainConfig, from_dict
from pretrain.corpora import open_corpus
from pretrain.tokenizer import load_tokenizer, train_tokenizer
from pretrain.train import prepare_data


@pytest.fixture(scope="session")
def tokenizer_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("tokenizer")
    train_tokenizer(open_corpus("embedded"), languages=LANGUAGES, vocab_size=2048,
                    sample_bytes_per_language=60_000, seed=0, out_dir=out)
    return out


@pytest.fixture(scope="session")
def tokenizer(tokenizer_dir):
    return load_tokenizer(tokenizer_dir)


@pytest.fixture
def one_thread():
    """Bitwise-reproducible CPU training needs a fixed thread count; restored afterwards (training sets it too)."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


def tiny_config(**over) -> PretrainConfig:
    """Python 6,144 and PHP 3,072 tokens in windows of 33 (a 32-token context): 279 windows, 34 steps of 8 rows;
    2 layers of width 32, warmup 4, lr 3e-3, snapshots at steps 0, 1, 2, 4 and every 10, resume state every 5.
    ``name=value`` replaces a section or a top-level scalar, ``section__key=value`` one key of a section."""
    data = {
        "data": {"languages": ["python", "php"], "tokens": {"python": 6144, "php": 3072}, "context": 32,
                 "validation_tokens": 2048},
        "tokenizer": {"vocab_size": 512, "sample_bytes_per_language": 100_000},
        "model": {"n_layer": 2, "n_embd": 32, "n_head": 4},
        "optim": {"batch_size": 8, "warmup": 4, "lr": 3e-3},
        "snapshots": {"every": 10, "log_max": 4},
        "resume": {"every": 5},
        "precision": "fp32", "threads": 1, "seed": 0,
    }
    for dotted, value in over.items():
        section, _, key = dotted.partition("__")
        if key:
            data.setdefault(section, {})[key] = value
        else:
            data[section] = value
    return from_dict(data)


@pytest.fixture(scope="session")
def make_cfg():
    """:func:`tiny_config`: ``make_cfg(**overrides)`` builds the tiny training config."""
    return tiny_config


@pytest.fixture(scope="session")
def prepared_dir(tmp_path_factory):
    """Tokenizer + token store of the tiny config, made once by prepare_data (the embedded corpus)."""
    base = tmp_path_factory.mktemp("prepared")
    prepare_data(tiny_config(), base)
    return base


@pytest.fixture(scope="session")
def seed_run_dir(prepared_dir):
    """``seed_run_dir(out)`` copies the prepared tokenizer and tokens into a run directory (prepare_data then
    reuses them)."""
    def seed(out: Path) -> Path:
        out.mkdir(parents=True, exist_ok=True)
        for name in ("tokenizer", "tokens"):
            shutil.copytree(prepared_dir / name, out / name)
        return out

    return seed
