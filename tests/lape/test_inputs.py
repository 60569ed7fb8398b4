"""LAPE inputs: token stores, files, JSONL, suites; budgets, batching, groups, errors."""
from __future__ import annotations

import json

import numpy as np
import pytest

from lensprobe.lape import InputError, LapeInputs
from lensprobe.lape.inputs import resolve_inputs


class CharTokenizer:
    """One id per character (ids 3..99), no special tokens unless asked; eos = 2."""

    eos_token_id = 2
    pad_token_id = 0

    def encode(self, text, add_special_tokens=True):
        ids = [3 + ord(c) % 97 for c in text]
        return ([1] + ids) if add_special_tokens else ids


def test_token_arrays_chunking_and_budget():
    streams = {"python": np.arange(3, 103), "php": np.arange(200, 230)}
    inp = LapeInputs.from_token_arrays(streams, seq_len=16, tokens_per_language=40)
    assert inp.n_tokens() == {"python": 40, "php": 30}
    assert [len(s) for s in inp.sequences["python"]] == [16, 16, 8]
    np.testing.assert_array_equal(np.concatenate(inp.sequences["python"]), np.arange(3, 43))
    assert inp.truncate(20).n_tokens() == {"python": 20, "php": 20}
    assert inp.digest() == LapeInputs.from_token_arrays(streams, seq_len=16, tokens_per_language=40).digest()
    assert inp.digest() != inp.truncate(20).digest()


def test_token_store_source(tmp_path, write_token_store):
    store = write_token_store(tmp_path / "tok", {"python": np.arange(3, 53), "php": np.arange(60, 90)})
    inp = LapeInputs.from_token_store(store, ["php", "python"], split="val", seq_len=8, tokens_per_language=20)
    assert inp.languages == ("php", "python")
    np.testing.assert_array_equal(np.concatenate(inp.sequences["python"]), np.arange(3, 23))
    train = LapeInputs.from_token_store(store, ["python"], split="train", seq_len=8, tokens_per_language=4)
    np.testing.assert_array_equal(train.sequences["python"][0], [52, 51, 50, 49])
    same = resolve_inputs(str(store), languages=["php", "python"], seq_len=8, tokens_per_language=20)
    assert same.digest() == inp.digest()
    with pytest.raises(InputError, match="no 'val' tokens for language 'go'"):
        LapeInputs.from_token_store(store, ["go"])
    with pytest.raises(InputError, match="token store"):
        LapeInputs.from_token_store(tmp_path / "missing", ["python"])


def test_files_directory_and_jsonl(tmp_path):
    src = tmp_path / "py"
    (src / "sub").mkdir(parents=True)
    (src / "b.py").write_text("bb")
    (src / "sub" / "a.py").write_text("aaa")
    (src / "ignored.txt").write_text("zzzz")
    jl = tmp_path / "docs.jsonl"
    jl.write_text("\n".join(json.dumps(r) for r in [
        {"language": "php", "text": "<?php"}, {"language": "python", "text": "nope"}, {"content": "echo"}]) + "\n")
    tok = CharTokenizer()
    inp = LapeInputs.from_files({"python": src, "php": jl}, tok, seq_len=4)
    # sorted paths: b.py then sub/a.py, joined by eos, no BOS
    np.testing.assert_array_equal(np.concatenate(inp.sequences["python"]), tok.encode("bb", False) + [2] + tok.encode("aaa", False))
    np.testing.assert_array_equal(np.concatenate(inp.sequences["php"]), tok.encode("<?php", False) + [2] + tok.encode("echo", False))
    assert [len(s) for s in inp.sequences["php"]] == [4, 4, 2]
    mixed = resolve_inputs({"python": str(src), "php": str(jl)}, languages=["python", "php"], tokenizer=tok, seq_len=4)
    assert mixed.digest() == inp.digest()
    with pytest.raises(InputError, match="needs a tokenizer"):
        resolve_inputs({"python": str(src)}, languages=["python"])
    with pytest.raises(InputError, match=r"no go files"):
        LapeInputs.from_files({"go": src}, tok)
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "ok"}\n{oops\n')
    with pytest.raises(InputError, match=r"bad.jsonl:2: not valid JSON"):
        LapeInputs.from_files({"python": bad}, tok)
    bad.write_text('{"body": "x"}\n')
    with pytest.raises(InputError, match=r"bad.jsonl:1: needs a string field"):
        LapeInputs.from_files({"python": bad}, tok)
    with pytest.raises(InputError, match="no such file"):
        LapeInputs.from_files({"python": tmp_path / "nope"}, tok)


def test_suite_source_renders_full_snippets():
    from lensprobe.suites import load_suite

    tok = CharTokenizer()
    inp = LapeInputs.from_suites(["php"], tok, seed=0, seq_len=10_000)
    items = load_suite("php").render(seed=0)
    assert len(inp.sequences["php"]) == len(items)
    np.testing.assert_array_equal(inp.sequences["php"][0], tok.encode(items[0].completion, False))
    capped = LapeInputs.from_suites(["php"], tok, seq_len=10_000, tokens_per_language=50)
    assert capped.n_tokens()["php"] == 50
    with pytest.raises(InputError, match="no identifier suite for language 'klingon'"):
        LapeInputs.from_suites(["klingon"], tok)


@pytest.mark.parametrize("side", ["left", "right"])
def test_batches_padding_groups_and_meta(side):
    streams = {"python": np.arange(3, 3 + 23), "php": np.arange(50, 50 + 9)}
    inp = LapeInputs.from_token_arrays(streams, seq_len=4)  # python: 6 seqs (last 3 long); php: 3 seqs (last 1)
    gl, seq_groups = inp.group_layout(4)
    assert gl.tolist() == [0, 0, 0, 0, 1, 1, 1]
    assert seq_groups["python"].tolist() == [0, 0, 1, 2, 2, 3] and seq_groups["php"].tolist() == [4, 5, 6]
    batches = list(inp.batches(batch_size=4, n_groups=4, padding_side=side, pad_id=0))
    assert [b.input_ids.shape[0] for b in batches] == [4, 2, 3]
    b = batches[1]  # python seqs 4 (len 4) and 5 (len 3)
    assert [m["group"] for m in b.meta] == [2, 3] and {m["language"] for m in b.meta} == {"python"}
    row = b.input_ids[1][b.attention_mask[1].bool()]
    np.testing.assert_array_equal(row.numpy(), streams["python"][20:23])
    pad_pos = 0 if side == "left" else 3
    assert b.attention_mask[1, pad_pos] == 0 and b.input_ids[1, pad_pos] == 0
    assert sum(int(x.attention_mask.sum()) for x in batches) == 32
    with pytest.raises(InputError, match="padding_side"):
        next(inp.batches(padding_side="middle"))


def test_empty_language_rejected():
    with pytest.raises(InputError, match="'php' has no tokens"):
        LapeInputs.from_token_arrays({"python": [5, 6], "php": []})
    with pytest.raises(InputError, match="no inputs for language"):
        LapeInputs.from_token_arrays({"python": [5, 6]}).select(["go"])
