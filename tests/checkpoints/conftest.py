"""Tiny checkpoint series built in tmp dirs (safetensors, HF layout) for the series tests."""
from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import torch

from lensprobe.testing import tiny_model

VOCAB_SIZE = 101


def make_tokenizer(*, variant: int = 0):
    """A WordLevel tokenizer of VOCAB_SIZE tokens wrapped in PreTrainedTokenizerFast.

    ``variant`` changes the vocabulary (words renamed), giving a genuinely different tokenizer.
    """
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    words = ["<pad>", "<s>", "</s>", "<unk>"] + [f"w{i + 1000 * variant}" for i in range(VOCAB_SIZE - 4)]
    backend = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    return PreTrainedTokenizerFast(tokenizer_object=backend, unk_token="<unk>", pad_token="<pad>",
                                   bos_token="<s>", eos_token="</s>")


def save_checkpoint(path: Path, model: torch.nn.Module, *, tokenizer: Any = None,
                    meta: dict[str, Any] | None = None, **save_kwargs: Any) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(path, **save_kwargs)
    if tokenizer is not None:
        tokenizer.save_pretrained(path)
    if meta is not None:
        (path / "checkpoint.json").write_text(json.dumps(meta))
    return path


def build_run(root: Path, model_type: str, steps: list[int], *, tokenizer: Any = None,
              name: str = "checkpoint-{step}", meta: bool = True, **model_kwargs: Any) -> Path:
    """A run dir with one checkpoint per step; weights differ per step (seed = step)."""
    tokenizer = tokenizer if tokenizer is not None else make_tokenizer()
    root.mkdir(parents=True, exist_ok=True)
    for step in steps:
        model = tiny_model(model_type, seed=step, vocab_size=VOCAB_SIZE, **model_kwargs)
        save_checkpoint(root / name.format(step=step), model, tokenizer=tokenizer,
                        meta={"step": step, "tokens": step * 1000, "run": root.name,
                              "tokens_by_language": {"python": step * 600, "php": step * 400},
                              "lr": 1e-3, "tokenizer_hash": "tok-v1"} if meta else None)
    return root


def copy_checkpoint(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    meta = dst / "checkpoint.json"
    if meta.exists():
        meta.unlink()  # the copy claims its own step by name only
    return dst


@pytest.fixture(autouse=True)
def _threads():
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


@pytest.fixture(scope="session")
def tokenizer():
    return make_tokenizer()


@pytest.fixture(scope="session")
def tools():
    """The helpers above (make_tokenizer, save_checkpoint, build_run, copy_checkpoint)."""
    import sys

    return sys.modules[__name__]
