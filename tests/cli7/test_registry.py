"""Probe specs: parsing, typed options, clear errors naming the key, custom registrations."""
from __future__ import annotations

import pytest

from lensprobe.engine.protocol import ModelProbe, Probe
from lensprobe.probes.registry import (ProbeSpecError, boolean, make_probe, parse_probe_spec, probe_help,
                                       register_probe, registered_probes, text_list)


def test_parse_splits_name_and_options_keeping_equals_and_colons_in_values():
    spec = parse_probe_spec("lape:languages=python+php,inputs=tokens:/data/x=y,seq_len=64")
    assert spec.name == "lape"
    assert spec.options == {"languages": "python+php", "inputs": "tokens:/data/x=y", "seq_len": "64"}
    assert parse_probe_spec("working_language").options == {}
    assert text_list("a+b") == ["a", "b"] and boolean("TRUE") is True and boolean("no") is False


@pytest.mark.parametrize("spec, needle", [
    ("", "non-empty"),
    ("lape:languages", "not key=value"),
    ("lape:a=1,a=2", "given twice"),
    ("bad name:x=1", "bad probe name"),
])
def test_parse_errors(spec, needle):
    with pytest.raises(ProbeSpecError, match=needle):
        parse_probe_spec(spec)


def test_working_language_spec_sets_the_probe_options(bpe):
    probe = make_probe("working_language:suite=php,prompts=all,exclude_last=1,limit=3,seed=2", tokenizer=bpe)
    cfg = probe.config()
    assert (cfg["suite"], cfg["prompts"], cfg["exclude_last"], cfg["limit"], cfg["seed"]) == \
        ("php", ["all"], 1, 3, 2)
    # the default is the paper's rule (only prompts whose model generates the identifier); both sets on request
    assert make_probe("working_language:suite=php", tokenizer=bpe).config()["prompts"] == ["generated"]
    assert make_probe("working_language:suite=php,prompts=all+generated", tokenizer=bpe).prompts == \
        ("generated", "all")
    # the option is part of the resume key
    hashes = {make_probe(f"working_language:suite=php{o}", tokenizer=bpe).config_hash()
              for o in ("", ",prompts=all", ",prompts=generated+all")}
    assert len(hashes) == 3
    # the same prompts as the Python API renders
    from lensprobe.suites import load_suite

    assert [i.prompt for i in probe.items] == [i.prompt for i in load_suite("php").render(seed=2, limit=3)]


@pytest.mark.parametrize("spec, needle", [
    ("working_language:suite=php,filter=true", "unknown key 'filter'.*allowed: .*prompts"),
    ("working_language:suite=php,filter_generated=true", "unknown key 'filter_generated'"),
    ("working_language:suite=php,prompts=kept", "prompts must be 'generated'.*'all'"),
    ("working_language:limit=3", "missing required key.*suite"),
    ("working_language:suite=php,exclude_last=two", "key 'exclude_last' expects integer"),
    ("working_language:suite=klingon", "unknown suite 'klingon'"),
    ("nope:x=1", "unknown probe 'nope'; known: .*working_language"),
    ("lape:languages=python+php", "no LAPE inputs for python, php"),
    ("lape:languages=php,inputs=suite,input_go=suite", "input_go"),
    ("babel:splits=/does/not/exist.json", "not a Babel split manifest"),
])
def test_bad_specs_name_the_problem(spec, needle, bpe):
    with pytest.raises(ProbeSpecError, match=needle) as info:
        make_probe(spec, tokenizer=bpe)
    assert spec in str(info.value)  # the message quotes the spec it came from


def test_lape_spec_builds_the_same_inputs_as_the_library(bpe, docs_jsonl):
    from lensprobe.lape import LapeInputs

    probe = make_probe(f"lape:languages=python+php,inputs={docs_jsonl},tokens_per_language=300,seq_len=32,"
                       "null_permutations=0,top_rate=0.02", tokenizer=bpe)
    ref = LapeInputs.from_files({"python": docs_jsonl, "php": docs_jsonl}, bpe, seq_len=32, tokens_per_language=300)
    assert probe.inputs.digest() == ref.digest()
    assert probe.inputs.n_tokens() == {"python": 300, "php": 300}
    assert (probe.top_rate, probe.null_permutations, probe.pad_id) == (0.02, 0, bpe.pad_token_id)
    mixed = make_probe(f"lape:languages=python+php,inputs={docs_jsonl},input_php=suite,tokens_per_language=200",
                       tokenizer=bpe)
    suite_php = LapeInputs.from_suites(["php"], bpe, tokens_per_language=200)
    assert [s.tolist() for s in mixed.inputs.sequences["php"]] == [s.tolist() for s in suite_php.sequences["php"]]
    assert mixed.inputs.sources["php"].startswith("suite:php")


def test_babel_spec(tmp_path):
    from lensprobe.babel.corpus import make_splits

    path = make_splits(n_shared=1, n_python_only=1, n_target_only=1, n_control=1).save(tmp_path / "splits.json")
    probe = make_probe(f"babel:splits={path},languages=python+php,execute=false,n_boot=50")
    assert isinstance(probe, ModelProbe)
    assert (probe.languages, probe.execute, probe.n_boot) == (("python", "php"), False, 50)


def test_register_custom_probe_and_refuse_silent_override():
    from lensprobe.probes.working_language import WorkingLanguageProbe

    seen = {}

    def factory(*, tokenizer=None, **opts):
        seen.update(opts)
        return WorkingLanguageProbe("php", limit=opts["limit"])

    register_probe("wl_test_probe", factory, options={"limit": int, "tag": str}, required=("limit",), help="test")
    assert "wl_test_probe" in registered_probes()
    probe = make_probe("wl_test_probe:limit=2,tag=x")
    assert isinstance(probe, Probe) and seen == {"limit": 2, "tag": "x"} and len(probe.items) == 2 * 5
    assert "limit* (integer)" in probe_help("wl_test_probe")
    with pytest.raises(ValueError, match="already registered"):
        register_probe("wl_test_probe", factory)
    register_probe("wl_test_probe_any", lambda tokenizer=None, **o: object(), options=None)
    with pytest.raises(ProbeSpecError, match="factory returned object"):
        make_probe("wl_test_probe_any:x=1")
