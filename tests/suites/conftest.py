"""Fixtures for suite and working-language tests: a byte-level BPE tokenizer trained here."""
from __future__ import annotations

import pytest

PYTHON_SNIPPETS = [
    "result = []\nfor x in items:\n    result.append(x * 2)\nprint(len(result))\n",
    "def f(values):\n    if not values or values is None:\n        return False\n    return sum(values) > 0 and True\n",
    "name = input()\nprint(name.find(':'), name.index('a'), str(3), sorted(xs), type(x))\n",
    "try:\n    n = int(s)\nexcept ValueError:\n    n = None\nxs.pop()\n",
]


@pytest.fixture(scope="session")
def bpe_tokenizer():
    """A byte-level BPE (GPT-2 style pre-tokenizer) trained on the bundled suites + Python, as HF fast tokenizer."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    import lensprobe.suites as suites

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
