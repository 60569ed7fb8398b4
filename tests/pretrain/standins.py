"""Temporary stand-ins for the data half (used only until pretrain.tokens / mixture exist)."""
from __future__ import annotations

import numpy as np
import torch


class Store:
    def __init__(self, n_tokens: dict[str, int], vocab: int, seed: int = 0):
        rng = np.random.default_rng(seed)
        self._train, self._val = {}, {}
        for i, (lang, n) in enumerate(n_tokens.items()):
            # a learnable stream: token t+1 = (a * t + b) mod vocab with noise
            seq = np.empty(n + 4096, dtype=np.int64)
            seq[0] = 3
            for j in range(1, len(seq)):
                seq[j] = (seq[j - 1] * (3 + i) + 7) % vocab if rng.random() > 0.2 else rng.integers(vocab)
            self._train[lang], self._val[lang] = seq[:n], seq[n:]
        self.languages = list(n_tokens)
        self.manifest = {"bytes_per_token": {lang: 3.5 for lang in n_tokens}}
        self.tokenizer_hash = "standin"

    def tokens(self, lang, split="train"):
        return (self._train if split == "train" else self._val)[lang]


class Schedule:
    def __init__(self, store, budgets, context, seed=0, max_epochs=4.0):
        self.store, self.budgets, self.context, self.seed = store, dict(budgets), context, seed

    def total_steps(self, batch_size, world_size=1):
        return sum(self.budgets.values()) // (batch_size * world_size * self.context)

    def batch(self, step, *, batch_size, rank=0, world_size=1):
        rng = np.random.default_rng([self.seed, step])
        langs = list(self.budgets)
        p = np.array([self.budgets[l] for l in langs], dtype=float)
        p /= p.sum()
        # deterministic allocation of rows to languages (largest remainder)
        counts = np.floor(p * batch_size).astype(int)
        rem = p * batch_size - counts
        order = np.argsort(-rem, kind="stable")
        extra = batch_size - counts.sum()
        phase = step % len(langs)
        for i in range(extra):
            counts[order[(i + phase) % len(langs)]] += 1
        rows, names = [], []
        for lang, c in zip(langs, counts):
            arr = self.store.tokens(lang)
            for _ in range(c):
                start = int(rng.integers(0, len(arr) - self.context - 1))
                rows.append(arr[start:start + self.context + 1])
                names.append(lang)
        return torch.as_tensor(np.stack(rows), dtype=torch.long), names


def tokenizer(vocab: int = 64):
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.WordLevel({f"t{i}": i for i in range(vocab)}, unk_token="t0"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="t1", eos_token="t2", pad_token="t0")


def prepared(budgets, *, context, vocab=64, seed=0):
    from pretrain.train import PreparedData

    store = Store({l: max(b, 8192) for l, b in budgets.items()}, vocab, seed=seed)
    return PreparedData(tokenizer=tokenizer(vocab), store=store, schedule=Schedule(store, budgets, context, seed),
                        tokenizer_hash="standin")
