"""lensprobe.mixture_file: one reader and one validator for the fits' output and pretraining's input."""
from __future__ import annotations

import pytest
import yaml

from lensprobe.languages import LANGUAGES
from lensprobe.mixture_file import load_mixture_file, read_mixture, validate_mixture_tokens, write_mixture


def test_load_mixture_file(tmp_path):
    f = tmp_path / "mix.yaml"
    f.write_text("tokens:\n  python: 100000000\n  php: 5B\nsource: fit\n")
    assert load_mixture_file(f) == {"python": 100_000_000, "php": 5_000_000_000}
    f.write_text("tokens:\n  python: lots\n")
    with pytest.raises(ValueError, match=r"mix\.yaml: field 'tokens\.python': not a token count: 'lots'"):
        load_mixture_file(f)
    f.write_text("budget: 3\n")
    with pytest.raises(ValueError, match=r"mix\.yaml: field 'tokens' missing"):
        load_mixture_file(f)
    with pytest.raises(FileNotFoundError, match="missing.yaml"):
        load_mixture_file(tmp_path / "missing.yaml")


def test_the_validator_rejects_what_pretraining_cannot_use(tmp_path):
    where = "m.yaml"
    assert validate_mixture_tokens({"go": "1.5k", "cpp": 0}, where) == {"go": 1500, "cpp": 0}
    for bad, message in [({}, "non-empty mapping"), ([1], "non-empty mapping"),
                         ({"rust": 1}, r"unknown language 'rust' \(canonical names: python, php"),
                         ({"C#": 1}, r"unknown language 'C#' \(write 'csharp'\)"),
                         ({"python": 1.5}, r"field 'tokens.python': .*not a whole number"),
                         ({"python": -3}, r"field 'tokens.python'"),
                         ({"python": 0, "php": "0"}, "all token counts are zero")]:
        with pytest.raises(ValueError, match=message):
            validate_mixture_tokens(bad, where)
    assert set(LANGUAGES) >= {"python", "php", "csharp", "go", "cpp"}  # the table it reads


def test_write_then_read_round_trips_with_free_keys(tmp_path):
    path = write_mixture(tmp_path / "m.yaml", {"python": 11e9, "php": 4.9999999996e9}, source="test", notes="n")
    doc = yaml.safe_load(path.read_text())
    assert doc == {"tokens": {"python": 11_000_000_000, "php": 5_000_000_000}, "source": "test", "notes": "n"}
    path.write_text(path.read_text() + "extra: [1, 2]\n")
    assert read_mixture(path) == {"tokens": {"python": 11_000_000_000, "php": 5_000_000_000}, "source": "test",
                                  "notes": "n", "extra": [1, 2]}
    with pytest.raises(ValueError, match="unknown language 'rust'"):
        write_mixture(tmp_path / "x.yaml", {"rust": 1})
    assert not (tmp_path / "x.yaml").exists()


def test_write_keeps_extra_keys_and_refuses_clashes(tmp_path):
    eq3 = {"eta_python": 5_999_151, "eta_target": 619_113, "share": 5_999_151 / (5_999_151 + 619_113)}
    path = write_mixture(tmp_path / "m.yaml", {"php": 619_113, "python": 30_956}, source="loop", extra={"eq3": eq3})
    doc = read_mixture(path)
    assert doc["eq3"] == eq3 and doc["tokens"] == {"php": 619_113, "python": 30_956}
    assert list(yaml.safe_load(path.read_text())) == ["tokens", "source", "eq3"]
    with pytest.raises(ValueError, match=r"extra keys \['notes'\] clash"):
        write_mixture(tmp_path / "y.yaml", {"php": 1}, extra={"notes": "x"})
    assert not (tmp_path / "y.yaml").exists()
