"""Fixtures shared by several test folders: two BPE tokenizers, so identifiers tokenize meaningfully
(``bpe``: pretrain's tokenizer trained on the embedded corpus, used by the probe and sweep tests;
``suite_bpe``: a byte-level BPE trained on the bundled suites, used by the suite and working-language tests),
``docs_jsonl``, a JSONL of embedded-corpus documents, and ``quick_demo``: the quick demo's output, built once
per session and shared by tests/demo and the snippet test (tests/docs)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast

import lensprobe.suites as suites
from pretrain.corpora import open_corpus
from pretrain.tokenizer import train_tokenizer


@pytest.fixture(scope="session")
def bpe(tmp_path_factory):
    """A 600-token BPE tokenizer trained on the embedded corpus's Python and PHP."""
    return train_tokenizer(open_corpus("embedded"), languages=["python", "php"], vocab_size=600,
                           sample_bytes_per_language=60_000, out_dir=tmp_path_factory.mktemp("tok"))


@pytest.fixture(scope="session")
def docs_jsonl(tmp_path_factory):
    """Four embedded-corpus documents per language (Python, PHP), one JSON object per line."""
    corpus = open_corpus("embedded")
    path = tmp_path_factory.mktemp("docs") / "docs.jsonl"
    with path.open("w") as fh:
        for lang in ("python", "php"):
            for i in range(4):
                fh.write(json.dumps({"language": lang, "text": corpus.document(lang, i).text}) + "\n")
    return path


PYTHON_SNIPPETS = [
    "result = []\nfor x in items:\n    result.append(x * 2)\nprint(len(result))\n",
    "def f(values):\n    if not values or values is None:\n        return False\n    return sum(values) > 0 and True\n",
    "name = input()\nprint(name.find(':'), name.index('a'), str(3), sorted(xs), type(x))\n",
    "try:\n    n = int(s)\nexcept ValueError:\n    n = None\nxs.pop()\n",
]


@pytest.fixture(scope="session")
def suite_bpe():
    """An 800-token byte-level BPE (GPT-2 style pre-tokenizer) trained on the bundled suites' completions and
    Python snippets, as an HF fast tokenizer."""
    texts = list(PYTHON_SNIPPETS) * 20
    for name in ("php", "csharp", "go", "cpp"):
        for item in suites.load_suite(name).render(seed=0, limit=10):
            texts.append(item.completion)
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=800, special_tokens=["<pad>", "<bos>", "<eos>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(texts, trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<bos>", eos_token="<eos>", pad_token="<pad>")


@dataclass(frozen=True)
class QuickDemo:
    """``lensprobe demo --quick --out runs/demo`` run in ``workdir`` (read its outputs; do not change them)."""

    workdir: Path      #: the working directory: ``runs/demo`` below it, ``../shared`` beside it
    out: Path          #: ``workdir / "runs" / "demo"``
    stdout: str
    stderr: str


@pytest.fixture(scope="session")
def quick_demo(tmp_path_factory):
    """The quick demo, run once per session in a temporary working directory (about 2 minutes on two idle
    cores; longer on a loaded machine). ``../shared`` beside the working directory points at the data the
    docs read (``../shared/data/eval``), as beside a checkout."""
    from lensprobe.demo import SHIPPED_BASE

    if not (SHIPPED_BASE / "model.safetensors").exists():
        pytest.fail(f"the shipped base checkpoint is missing: {SHIPPED_BASE}")
    base = tmp_path_factory.mktemp("demo_workspace")
    workdir = base / "ws"
    workdir.mkdir()
    shared = Path(__file__).resolve().parents[1].parent / "shared"
    if shared.is_dir():
        (base / "shared").symlink_to(shared, target_is_directory=True)
    env = {**os.environ, "COLUMNS": "100"}
    proc = subprocess.run([sys.executable, "-m", "lensprobe.cli", "demo", "--quick", "--out", "runs/demo"],
                          cwd=workdir, capture_output=True, text=True, timeout=2400, env=env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return QuickDemo(workdir=workdir, out=workdir / "runs" / "demo", stdout=proc.stdout, stderr=proc.stderr)
