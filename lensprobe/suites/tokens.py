"""Token sets of identifier forms: which first tokens stand for the target and the reference identifier.

A surface form such as ``.append`` contributes the first token of its core (``append``) and of
``" " + core``; ``token_forms`` in a suite replaces that with exact strings.  The lens compares the
probability mass on the two sets (docs/suites.md).
"""
from __future__ import annotations

import string
from dataclasses import dataclass
from typing import Any, Iterable

from lensprobe.suites.schema import IdentifierSpec

__all__ = ["TokenSets", "split_form", "token_texts", "encode_text", "first_token_ids", "decode_token",
           "identifier_token_sets"]

_LEAD_PUNCT = set(string.punctuation) - {"_"}


@dataclass(frozen=True)
class TokenSets:
    """Token ids of one identifier pair: target-language set, reference (Python) set, collision."""

    identifier: str
    target: frozenset[int]
    reference: frozenset[int]

    @property
    def shared(self) -> frozenset[int]:
        return self.target & self.reference

    @property
    def collision(self) -> bool:
        """True when the lens cannot tell the two languages apart (a token belongs to both sets)."""
        return bool(self.shared)


def split_form(form: str) -> tuple[str, str]:
    """Split a surface form into (leading punctuation, word core).

    ``".append"`` -> ``(".", "append")``; ``"=append"`` -> ``("=", "append")``;
    ``"&&"`` -> ``("&&", "")``; ``"Console.WriteLine"`` -> ``("", "Console.WriteLine")``.
    The leading punctuation belongs to the prompt (prompts end after it), the core is written.
    """
    i = 0
    while i < len(form) and form[i] in _LEAD_PUNCT:
        i += 1
    if i == len(form):
        return form, ""
    return form[:i], form[i:]


def token_texts(form: str) -> tuple[str, str]:
    """The two strings whose first tokens make a form's token set: ``core`` and ``" " + core``
    (for a form that is all punctuation, such as ``&&`` or ``!``, the form itself)."""
    lead, core = split_form(form)
    word = core or lead
    return word, " " + word


def encode_text(tokenizer: Any, text: str) -> list[int]:
    """Token ids of ``text`` without special tokens (HF tokenizers and ``tokenizers.Tokenizer``)."""
    try:
        enc = tokenizer.encode(text, add_special_tokens=False)
    except TypeError:  # pragma: no cover - exotic tokenizers
        enc = tokenizer.encode(text)
    ids = getattr(enc, "ids", enc)
    return [int(i) for i in ids]


def first_token_ids(tokenizer: Any, texts: Iterable[str]) -> frozenset[int]:
    """The first token of each text, skipping first tokens that decode to whitespace only
    (a tokenizer without a ``" word"`` merge yields a bare space token, shared by every form)."""
    out = set()
    for text in texts:
        ids = encode_text(tokenizer, text)
        if ids and not (text[:1].isspace() and not decode_token(tokenizer, ids[0]).strip()):
            out.add(ids[0])
    return frozenset(out)



def decode_token(tokenizer: Any, token_id: int) -> str:
    """The text of one token (its id as text when the tokenizer cannot decode it)."""
    try:
        return tokenizer.decode([token_id])
    except Exception:  # pragma: no cover
        return str(token_id)


def _texts(spec: IdentifierSpec, side: str) -> list[str]:
    if spec.token_forms and side in spec.token_forms:
        return list(spec.token_forms[side])
    forms = spec.target_forms if side == "target" else spec.reference_forms
    return [t for f in forms for t in token_texts(f)]


def identifier_token_sets(spec: IdentifierSpec, tokenizer: Any) -> tuple[frozenset[int], frozenset[int]]:
    """(target, reference) first-token sets of one identifier pair.

    By default a form contributes the first token of ``core`` and of ``" " + core``, where core is
    the form without leading punctuation (``.append`` -> ``append``; ``&&`` stays ``&&``).
    ``token_forms`` in the YAML replaces this with exact strings (first token of each, as written).
    """
    return first_token_ids(tokenizer, _texts(spec, "target")), first_token_ids(tokenizer, _texts(spec, "reference"))
