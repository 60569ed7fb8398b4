"""lensprobe.token_counts: the one parser for token counts (names, mixture files, budgets, fits)."""
from __future__ import annotations

from decimal import Decimal

import numpy as np
import pytest

from lensprobe.token_counts import parse_token_count, parse_token_quantity, token_count_and_resolution


@pytest.mark.parametrize("value, expected", [
    (100, 100), ("100M", 100_000_000), ("5B", 5_000_000_000), ("1.5k", 1500), ("2G", 2 * 10 ** 9),
    ("1_000", 1000), ("1,000", 1000), ("2e3", 2000), ("3 T", 3 * 10 ** 12), (1e9, 10 ** 9), ("0", 0),
    ("7 tokens", 7), ("1 token", 1), (np.int64(5), 5), (np.float64(2e3), 2000), ("4b", 4 * 10 ** 9),
    (" 2 M ", 2_000_000), ("0.001B", 1_000_000), ("1.1B", 1_100_000_000), ("2.5e-3M", 2500),
])
def test_whole_counts(value, expected):
    got = parse_token_count(value)
    assert got == expected and type(got) is int


@pytest.mark.parametrize("value", ["1.5", "-3", "ten", "1.2345k", True, None, 1.5, -1, "5 X", "", "B", "4X",
                                   "-4B", "4..5B", float("inf"), float("nan"), [5]])
def test_rejected_counts(value):
    with pytest.raises(ValueError, match="not a token count"):
        parse_token_count(value)


def test_quantities_allow_fractions_and_are_decimal_exact():
    assert parse_token_quantity("1.5") == 1.5 and parse_token_quantity(7) == 7.0
    # decimal arithmetic: the float nearest to the written number, not float("1.1") * 1e9
    assert parse_token_quantity("4.1B") == float(Decimal("4.1") * 10 ** 9) == 4.1e9
    assert float("4.1") * 1e9 != 4.1e9  # what a float parser would have returned (4099999999.9999995)
    assert parse_token_count("4.1M") == 4_100_000
    assert parse_token_quantity("2.5e9") == 2.5e9
    with pytest.raises(ValueError, match="not a token count"):
        parse_token_quantity(-1.0)


@pytest.mark.parametrize("text, count, resolution", [
    ("4B", 4 * 10 ** 9, 10 ** 9), ("4.5B", 4_500_000_000, 10 ** 8), ("0.001B", 10 ** 6, 10 ** 6),
    ("4096", 4096, 1), ("12K", 12_000, 1000), ("1.25", 1, 1), ("2e3", 2000, 1000),
])
def test_names_round_and_report_their_resolution(text, count, resolution):
    assert token_count_and_resolution(text) == (count, resolution)
