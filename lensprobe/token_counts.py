"""Token counts as people write them: ``100000``, ``"100M"``, ``"5B"``, ``"1.5T"``, ``"2e9"``.

The one parser for token counts in checkpoint names (:mod:`lensprobe.checkpoints`), mixture files
(:mod:`lensprobe.mixture_file`), pretraining budgets (:mod:`pretrain`) and the data-mix fits
(:mod:`lensprobe.analysis.fit`). Grammar (docs/checkpoints.md, "Token counts"): a non-negative
decimal number, optionally with an exponent (``2e9``), then an optional unit ``K`` (10^3),
``M`` (10^6), ``B`` or ``G`` (10^9), ``T`` (10^12), then an optional word ``token``/``tokens``;
case, surrounding spaces and the digit separators ``_`` and ``,`` are ignored. Numbers (int,
float, NumPy scalars) are accepted as they are. Arithmetic is decimal, so ``"1.1B"`` is exactly
1_100_000_000.
"""
from __future__ import annotations

import math
import numbers
import re
from decimal import Decimal, InvalidOperation

__all__ = ["UNITS", "parse_token_count", "parse_token_quantity", "token_count_and_resolution"]

#: unit suffix (upper case) -> multiplier
UNITS: dict[str, int] = {"": 1, "K": 10**3, "M": 10**6, "B": 10**9, "G": 10**9, "T": 10**12}

_TEXT = re.compile(r"^\s*(?P<num>\d*\.?\d+)(?P<exp>e[+-]?\d+)?\s*(?P<unit>[kmbgt]?)\s*(?:tokens?)?\s*$",
                   re.IGNORECASE)
_EXAMPLES = "e.g. 100000, '100M', '5B', '1.5T', '2e9'"


def _decimal(value: object) -> tuple[Decimal, int]:
    """``(exact value, resolution)``; resolution is the value of one unit in the last written digit."""
    if isinstance(value, bool) or value is None:
        raise ValueError(f"not a token count: {value!r} (expected a number or a string, {_EXAMPLES})")
    if isinstance(value, numbers.Integral):
        if value < 0:
            raise ValueError(f"not a token count: {value!r} (must be >= 0)")
        return Decimal(int(value)), 1
    if isinstance(value, numbers.Real):
        v = float(value)
        if not math.isfinite(v) or v < 0:
            raise ValueError(f"not a token count: {value!r} (must be a finite number >= 0)")
        return Decimal(v), 1
    if not isinstance(value, str):
        raise ValueError(f"not a token count: {type(value).__name__} {value!r} (expected {_EXAMPLES})")
    m = _TEXT.match(value.replace("_", "").replace(",", ""))
    if not m:
        raise ValueError(f"not a token count: {value!r} (expected {_EXAMPLES})")
    num, exp, unit = m.group("num"), m.group("exp") or "", m.group("unit").upper()
    try:
        number = Decimal(num + exp) * UNITS[unit]
    except InvalidOperation as exc:  # pragma: no cover - the regex admits only decimals
        raise ValueError(f"not a token count: {value!r}") from exc
    decimals = len(num.split(".")[1]) if "." in num else 0
    exponent = int(exp[1:]) if exp else 0
    resolution = max(1, int(Decimal(UNITS[unit]) * Decimal(10) ** (exponent - decimals)))
    return number, resolution


def parse_token_count(value: object) -> int:
    """A whole, non-negative number of tokens: ``"100M"`` -> 100_000_000, ``"1.5k"`` -> 1500,
    ``"2e9"``, ``"7 tokens"``, ``4096``, ``1e9``. ``ValueError`` for anything else, including a
    count that is not a whole number (``"1.2345k"``, ``1.5``)."""
    number, _ = _decimal(value)
    if number != number.to_integral_value():
        raise ValueError(f"not a token count: {value!r} is not a whole number of tokens ({number})")
    return int(number)


def parse_token_quantity(value: object) -> float:
    """A non-negative amount of tokens as a float, fractions allowed (``"11B"`` -> 11e9,
    ``"1.5"`` -> 1.5): for arithmetic on budgets (shares, fitted allocations)."""
    number, _ = _decimal(value)
    return float(number)


def token_count_and_resolution(text: str) -> tuple[int, int]:
    """``(count, resolution)`` of a token count written in a name, rounded to a whole count
    (half to even): ``"4.5B"`` -> ``(4_500_000_000, 100_000_000)``, the resolution being what one
    unit of the last written digit is worth (names round their counts)."""
    number, resolution = _decimal(str(text))
    return int(number.to_integral_value()), resolution
