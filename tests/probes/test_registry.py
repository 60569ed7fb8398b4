"""Probe specs: parsing, typed options, clear errors naming the key, custom registrations."""
from __future__ import annotations

from typing import Literal, Sequence

import pytest

from lensprobe.engine.protocol import ModelProbe, Probe
from lensprobe.probes.registry import (ProbeSpecError, boolean, make_probe, parse_probe_spec, probe_help,
                                       probe_options, register_probe, registered_probes, text_list)


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


def test_options_are_the_probe_constructors_parameters():
    import inspect

    from lensprobe.probes.babel import BabelProbe
    from lensprobe.probes.functional import FunctionalProbe
    from lensprobe.probes.lape import LapeProbe
    from lensprobe.probes.working_language import WorkingLanguageProbe

    assert {"working_language", "lape", "babel", "functional"} <= set(registered_probes())
    # every parameter a spec can give is a key, with the signature's default; the rest (LapeInputs,
    # a LapeResult, the tokenizer, the mapping filled by input_<name>, a TunedLensSeries) are left out
    left_out = {"working_language": {"tuned_series"}, "lape": {"tokenizer", "reference", "input_sources"}, "babel": set(),
                "functional": set()}
    for name, cls in (("working_language", WorkingLanguageProbe), ("lape", LapeProbe), ("babel", BabelProbe),
                      ("functional", FunctionalProbe)):
        params = inspect.signature(cls).parameters
        options = probe_options(name)
        assert set(options) == set(params) - left_out[name], name
        for key, opt in options.items():
            default = params[key].default
            assert opt.required == (default is inspect.Parameter.empty), (name, key)
            if not opt.required:
                assert opt.default == default, (name, key)
            assert opt.doc, f"{name}.{key} has no description in the class docstring's Args section"
    wl = probe_options("working_language")
    assert (wl["suite"].required, wl["limit"].convert, wl["prompts"].convert, wl["add_bos"].convert) == \
        (True, int, text_list, boolean)
    assert wl["padding_side"].type_name == "left|right"
    assert probe_options("functional")["ks"].convert("1+10") == [1, 10]
    assert probe_options("lape")["top_rate"].convert("0.02") == 0.02
    assert "rendering seed of the suite" in probe_options("working_language")["seed"].doc


def test_probe_help_lists_keys_types_defaults_and_descriptions():
    text = probe_help("working_language")
    assert text.splitlines()[0].startswith("working_language: Logit-lens working language (Eq.1)")
    assert "  suite* (text): a Suite, a suite name" in text
    assert "  exclude_last (integer, default none): final layers left out of Eq.1" in text
    assert "  prompts (list (a+b), default generated):" in text
    assert "input_<name> (text): input_sources[<name>]" in probe_help("lape")
    assert "``" not in text and ":class:" not in text  # reST markup is stripped


def test_adding_a_probe_is_one_decorated_class(monkeypatch):
    """A probe defined anywhere (here: this test) registers itself; its keys come from its signature."""
    from lensprobe.probes import registry
    from lensprobe.probes.working_language import WorkingLanguageProbe

    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))

    @register_probe
    class Echo(WorkingLanguageProbe):
        """Echoes its options.

        Args:
            limit: prompts per identifier.
            tags: free labels.
            mode: how to echo.
        """

        name = "echo_test_probe"

        def __init__(self, *, limit: int, tags: Sequence[str] = (), mode: Literal["loud", "quiet"] = "quiet",
                     tokenizer=None):
            super().__init__("php", limit=limit)
            self.tags, self.mode, self.got_tokenizer = list(tags), mode, tokenizer

    probe = make_probe("echo_test_probe:limit=2,tags=a+b,mode=loud", tokenizer="TOK")
    assert isinstance(probe, Echo) and (probe.limit, probe.tags, probe.mode, probe.got_tokenizer) == \
        (2, ["a", "b"], "loud", "TOK")
    assert len(probe.items) == 2 * 5
    help_text = probe_help("echo_test_probe")
    assert "Echoes its options." in help_text and "limit* (integer): prompts per identifier." in help_text
    assert "mode (loud|quiet, default quiet): how to echo." in help_text
    with pytest.raises(ProbeSpecError, match="key 'mode' expects loud|quiet"):
        make_probe("echo_test_probe:limit=2,mode=shout")
    with pytest.raises(ProbeSpecError, match="missing required key.*limit"):
        make_probe("echo_test_probe:mode=loud")
    with pytest.raises(ValueError, match="already registered"):
        register_probe(Echo, name="working_language")
    register_probe(Echo, name="working_language", replace=True)
    assert isinstance(make_probe("working_language:limit=1"), Echo)


def test_factory_functions_and_bad_registrations(monkeypatch):
    from lensprobe.probes import registry
    from lensprobe.probes.working_language import WorkingLanguageProbe

    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))
    seen = {}

    def wl_test_factory(*, limit: int, tag: str = "x", tokenizer=None):
        """A factory."""
        seen.update(limit=limit, tag=tag)
        return WorkingLanguageProbe("php", limit=limit)

    register_probe(wl_test_factory)
    probe = make_probe("wl_test_factory:limit=2,tag=y")
    assert isinstance(probe, Probe) and seen == {"limit": 2, "tag": "y"}
    assert "limit* (integer)" in probe_help("wl_test_factory")
    register_probe(lambda **o: object(), name="wl_test_any")
    with pytest.raises(ProbeSpecError, match="returned object"):
        make_probe("wl_test_any")

    def bad(*, reference: dict):
        return None

    with pytest.raises(TypeError, match="'reference' has type.*cannot give"):
        register_probe(bad, name="wl_test_bad")
    with pytest.raises(TypeError, match="not a Probe"):
        register_probe(dict)
    with pytest.raises(TypeError, match="prefix 'x_' needs a parameter 'y'"):
        register_probe(wl_test_factory, name="wl_test_prefix", prefixes={"x_": "y"})


def test_entry_points_add_probes_from_other_packages(monkeypatch):
    import types

    from lensprobe.probes import registry

    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))
    monkeypatch.setattr(registry, "_DISCOVERED", False)

    def third_party(*, depth: int = 3):
        """A third-party probe factory."""
        from lensprobe.probes.working_language import WorkingLanguageProbe

        return WorkingLanguageProbe("php", limit=depth)

    class EntryPoint:
        def __init__(self, name, obj, value):
            self.name, self.obj, self.value = name, obj, value

        def load(self):
            if isinstance(self.obj, Exception):
                raise self.obj
            return self.obj

    module = types.ModuleType("third_party_probes")
    points = [EntryPoint("tp_probe", third_party, "tp:third_party"), EntryPoint("tp_module", module, "tp"),
              EntryPoint("tp_broken", ImportError("no module named tp_missing"), "tp_missing:X")]
    monkeypatch.setattr(registry, "_entry_points", lambda: points)
    with pytest.warns(RuntimeWarning, match="'tp_broken'.*no module named tp_missing"):
        names = registered_probes()
    assert "tp_probe" in names and "tp_module" not in names and "working_language" in names
    assert make_probe("tp_probe:depth=2").limit == 2
