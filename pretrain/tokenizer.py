"""Byte-level BPE tokenizer trained on a balanced sample of every language.

One tokenizer serves a Python-only run and all its continuations, so it is trained on an equal
number of bytes from each language. The default pre-tokenizer keeps identifiers whole (a Split on
identifiers / numbers / newline+indent / spaces / punctuation runs, then byte-level mapping without
its GPT-2 regex), so BPE merges never cross an identifier's boundary and frequent identifiers
(``len``, ``count``, ``strlen``, ``sum``, ``array_sum``) become single tokens, the same token
wherever they occur (whitespace is its own token), which the logit lens needs.

Special token: ``<|endoftext|>`` is the eos, bos and pad token (GPT-2's convention); documents
are separated by it in the token files. Nothing is added automatically when encoding.
The tokenizer is saved as an HF fast tokenizer (``tokenizer.json`` + ``tokenizer_config.json``)
plus ``lensprobe_tokenizer.json`` (training metadata and hash). The hash is
:func:`lensprobe.checkpoints.tokenizer.tokenizer_hash`, the one tokenizer identity (docs/checkpoints.md).
"""
from __future__ import annotations

import json
import os
import random
import re
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

from lensprobe.checkpoints.tokenizer import tokenizer_hash  # the one tokenizer identity, re-exported
from lensprobe.files import atomic_write_json, owned_directory
from lensprobe.languages import check_language

EOS_TOKEN = "<|endoftext|>"
METADATA_FILE = "lensprobe_tokenizer.json"

PRE_TOKENIZER_PATTERNS: dict[str, str] = {
    # identifiers | numbers | newline + indentation | other whitespace | punctuation runs
    "identifiers": r"[\p{L}_][\p{L}\p{N}_]*|\p{N}+|\n[^\S\n]*|[^\S\n]+|[^\s\p{L}\p{N}_]+",
    # as above, but a single leading space sticks to the identifier (" len"), GPT-2 style
    "identifiers_space": r" ?[\p{L}_][\p{L}\p{N}_]*| ?\p{N}+|\n[^\S\n]*|[^\S\n]+|[^\s\p{L}\p{N}_]+",
}
"""Named pre-tokenizer regexes; ``"gpt2"`` (ByteLevel's own regex) is also accepted."""


def _pre_tokenizer(spec: str | Mapping[str, str]):
    from tokenizers import Regex, pre_tokenizers

    if isinstance(spec, Mapping):
        if set(spec) != {"regex"}:
            raise ValueError(f"pre_tokenizer: expected a preset name or {{'regex': PATTERN}}, got {spec!r}")
        pattern = spec["regex"]
    elif spec == "gpt2":
        return pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    elif spec in PRE_TOKENIZER_PATTERNS:
        pattern = PRE_TOKENIZER_PATTERNS[spec]
    else:
        raise ValueError(f"pre_tokenizer: unknown preset {spec!r}; expected one of "
                         f"{', '.join([*PRE_TOKENIZER_PATTERNS, 'gpt2'])} or {{'regex': PATTERN}}")
    return pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(pattern), behavior="isolated"),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])


def balanced_sample(corpus: Any, languages: Sequence[str], sample_bytes_per_language: int,
                    ) -> dict[str, list[str]]:
    """Texts per language, the same number of UTF-8 bytes each (the smallest language's total
    when a finite corpus has fewer than ``sample_bytes_per_language`` bytes of some language)."""
    texts: dict[str, list[str]] = {}
    sizes: dict[str, int] = {}
    for lang in languages:
        got, n = [], 0
        for doc in corpus.documents(lang):
            data = doc.text.encode("utf-8")
            if n + len(data) > sample_bytes_per_language:
                rest = data[: sample_bytes_per_language - n].decode("utf-8", errors="ignore")
                if rest:
                    got.append(rest)
                    n += len(rest.encode("utf-8"))
                break
            got.append(doc.text)
            n += len(data)
        if n == 0:
            raise ValueError(f"tokenizer sample: the corpus has no {lang} text")
        texts[lang], sizes[lang] = got, n
    cap = min(sizes.values())
    for lang in languages:  # trim every language to the smallest one: balanced
        if sizes[lang] > cap:
            kept, n = [], 0
            for t in texts[lang]:
                b = len(t.encode("utf-8"))
                if n + b > cap:
                    rest = t.encode("utf-8")[: cap - n].decode("utf-8", errors="ignore")
                    if rest:
                        kept.append(rest)
                    break
                kept.append(t)
                n += b
            texts[lang] = kept
    return texts


def train_tokenizer(corpus: Any, *, languages: Sequence[str], vocab_size: int = 2048,
                    sample_bytes_per_language: int = 2_000_000, seed: int = 0,
                    out_dir: str | os.PathLike | None = None,
                    pre_tokenizer: str | Mapping[str, str] = "identifiers", min_frequency: int = 2):
    """Train a byte-level BPE on a balanced sample of ``languages``; save it to ``out_dir``.

    Returns a ``PreTrainedTokenizerFast``. ``seed`` fixes the interleaving of the sample.
    If ``out_dir`` already holds a tokenizer trained with the same arguments, it is loaded instead.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    languages = [check_language(x) for x in languages]
    if not languages:
        raise ValueError("train_tokenizer: 'languages' is empty")
    if isinstance(vocab_size, bool) or not isinstance(vocab_size, int) or vocab_size < 257 + 1:
        raise ValueError(f"train_tokenizer: vocab_size must be an int >= 258 (256 bytes + special), got {vocab_size!r}")
    if isinstance(sample_bytes_per_language, bool) or not isinstance(sample_bytes_per_language, int) \
            or sample_bytes_per_language < 1:
        raise ValueError(f"train_tokenizer: sample_bytes_per_language must be a positive int, "
                         f"got {sample_bytes_per_language!r}")
    fingerprint = getattr(corpus, "fingerprint", None)
    settings = {"languages": languages, "vocab_size": vocab_size,
                "sample_bytes_per_language": sample_bytes_per_language, "seed": seed,
                "pre_tokenizer": pre_tokenizer if isinstance(pre_tokenizer, str) else dict(pre_tokenizer),
                "min_frequency": min_frequency,
                "corpus": fingerprint() if callable(fingerprint) else type(corpus).__name__}
    if out_dir is not None:
        meta_path = Path(out_dir) / METADATA_FILE
        if meta_path.is_file() and (Path(out_dir) / "tokenizer.json").is_file():
            try:
                meta = json.loads(meta_path.read_text())
            except json.JSONDecodeError:
                meta = {}
            if meta.get("settings") == json.loads(json.dumps(settings, default=str)):
                return load_tokenizer(out_dir)

    texts = balanced_sample(corpus, languages, sample_bytes_per_language)
    chunks = [(lang, t) for lang in languages for t in texts[lang]]
    random.Random(f"tokenizer:{seed}").shuffle(chunks)

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = _pre_tokenizer(pre_tokenizer)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, min_frequency=min_frequency,
                                  special_tokens=[EOS_TOKEN], show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())

    def iterator() -> Iterator[str]:
        for _, text in chunks:
            yield text

    tok.train_from_iterator(iterator(), trainer, length=len(chunks))
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token=EOS_TOKEN, bos_token=EOS_TOKEN,
                                   pad_token=EOS_TOKEN)
    if out_dir is not None:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        # one writer at a time; the metadata temporaries of a killed one are removed
        with owned_directory(out, [re.escape(METADATA_FILE)], what="tokenizer"):
            fast.save_pretrained(str(out))
            sample_bytes = {lang: sum(len(t.encode("utf-8")) for t in texts[lang]) for lang in languages}
            atomic_write_json(out / METADATA_FILE, {"settings": settings, "sample_bytes": sample_bytes,
                                                    "hash": tokenizer_hash(fast), "eos_token": EOS_TOKEN,
                                                    "vocab_size": len(fast)})
    return fast


def load_tokenizer(path: str | os.PathLike):
    """The ``PreTrainedTokenizerFast`` saved in ``path`` (a tokenizer or checkpoint directory)."""
    from transformers import PreTrainedTokenizerFast

    path = Path(path)
    if not (path / "tokenizer.json").is_file():
        raise FileNotFoundError(f"{path}: no tokenizer.json (not a saved tokenizer directory)")
    tok = PreTrainedTokenizerFast.from_pretrained(str(path))
    if tok.eos_token is None:
        raise ValueError(f"{path}: the tokenizer has no eos token (documents are separated by it)")
    return tok


__all__ = ["train_tokenizer", "load_tokenizer", "tokenizer_hash", "balanced_sample", "EOS_TOKEN",
           "PRE_TOKENIZER_PATTERNS"]
