"""Checkpoint names and token counts."""
from __future__ import annotations

import pytest

from lensprobe.checkpoints import ParsedName, parse_checkpoint_name, parse_token_count


@pytest.mark.parametrize("name, step, tokens", [
    ("checkpoint-100", 100, None),
    ("checkpoint100", 100, None),
    ("step-7", 7, None),
    ("step7", 7, None),
    ("step_7", 7, None),
    ("ckpt-0", 0, None),
    ("iter_0000250", 250, None),
    ("step1000-tokens4B", 1000, 4_000_000_000),
    ("step1000-tokens4b", 1000, 4_000_000_000),
    ("step500-tokens2.5B", 500, 2_500_000_000),
    ("step10-tokens500M", 10, 500_000_000),
    ("step10-tokens4096", 10, 4096),
    ("stage1-step1000-tokens5B", 1000, 5_000_000_000),
    ("step-000100-2BT", 100, 2_000_000_000),
    ("step-000100-0.5BT", 100, 500_000_000),
    ("step-3-12KT", 3, 12_000),
    ("step-9-1.25TT", 9, 1_250_000_000_000),
])
def test_names_parse(name, step, tokens):
    parsed = parse_checkpoint_name(name)
    assert parsed is not None
    assert (parsed.step, parsed.tokens) == (step, tokens)


@pytest.mark.parametrize("name", [
    "tokenizer", "final", "main", "step", "step-", "checkpoint-abc", ".checkpoint-100.x1y.tmp",
    "checkpoint-100-extra", "step-100-2T", "my-step-100", "step-1-tokens", "logs",
])
def test_non_checkpoint_names(name):
    assert parse_checkpoint_name(name) is None


@pytest.mark.parametrize("text, value", [
    ("4B", 4 * 10**9), ("4b", 4 * 10**9), ("1.5T", 1_500_000_000_000), ("500M", 500 * 10**6),
    ("12K", 12_000), ("4096", 4096), ("0.001B", 1_000_000), ("3G", 3 * 10**9), (" 2 M ", 2_000_000),
])
def test_token_counts(text, value):
    assert parse_token_count(text) == value


@pytest.mark.parametrize("text", ["", "B", "4X", "-4B", "4..5B", "four"])
def test_bad_token_counts(text):
    with pytest.raises(ValueError, match="not a token count"):
        parse_token_count(text)


def test_token_resolution_follows_written_digits():
    # "4B" is only known to the nearest billion, "4.25B" to the nearest ten million
    assert parse_checkpoint_name("step1-tokens4B") == ParsedName(1, 4 * 10**9, 10**9)
    assert parse_checkpoint_name("step1-tokens4.25B") == ParsedName(1, 4_250_000_000, 10**7)
