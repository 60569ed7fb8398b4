"""Checkpoint names: ``checkpoint-N``, ``step-N``, ``stepN``, ``stepN-tokens4B``, ``step-000100-2BT``,
``stage1-step10-tokens1B`` -> step and (rounded) token count."""
from __future__ import annotations

import re
from dataclasses import dataclass

from lensprobe.token_counts import token_count_and_resolution

__all__ = ["ParsedName", "parse_checkpoint_name"]

_NUM = r"\d+(?:\.\d+)?"
_NAME_RE = re.compile(
    rf"""^(?:stage\d+[-_])?
    (?:checkpoint|ckpt|step|iter)[-_]?(?P<step>\d+)
    (?:[-_](?:
        tok(?:en)?s?[-_]?(?P<tok_a>{_NUM})(?P<unit_a>[KMGBT]?)
      | (?P<tok_b>{_NUM})(?P<unit_b>[KMGBT])T
    ))?$""",
    re.X | re.I,
)


@dataclass(frozen=True)
class ParsedName:
    """What a checkpoint directory / revision name says: its step and (rounded) token count."""

    step: int
    tokens: int | None = None
    #: the value of one unit in the last written digit of the token count ("4.5B" -> 1e8)
    tokens_resolution: int | None = None


def parse_checkpoint_name(name: str) -> ParsedName | None:
    """Parse a checkpoint directory or revision name; ``None`` when it is not a checkpoint name.

    Accepted: ``checkpoint-N``, ``step-N``, ``stepN``, ``step_N``, ``ckpt-N``, ``iter_N``, each
    optionally followed by ``-tokens<count>`` (``step1000-tokens4B``, OLMo style, optionally
    prefixed by ``stage1-``) or ``-<count><unit>T`` (``step-000100-2BT`` = 2B tokens). The count
    is read by :func:`lensprobe.token_counts.token_count_and_resolution`.
    """
    m = _NAME_RE.match(name)
    if not m:
        return None
    step = int(m.group("step"))
    num = m.group("tok_a") or m.group("tok_b")
    if num is None:
        return ParsedName(step)
    unit = m.group("unit_a") if m.group("tok_a") else m.group("unit_b")
    tokens, resolution = token_count_and_resolution(num + (unit or ""))
    return ParsedName(step, tokens, resolution)
