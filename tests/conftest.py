"""Fixtures shared by several test folders: two BPE tokenizers, so identifiers tokenize meaningfully
(``bpe``: pretrain's tokenizer trained on the embedded corpus, used by the probe and sweep tests;
``suite_bpe``: a byte-level BPE trained on the bundled suites, used by the suite and working-language tests),
and ``docs_jsonl``, a JSONL of embedded-corpus documents."""
from __future__ import annotations

import json

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
