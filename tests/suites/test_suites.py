"""Identifier suites: bundled files, rendering, validation, discovery, token sets."""
from __future__ import annotations

import importlib.metadata
import re
import sys
from pathlib import Path

import pytest

import lensprobe
import lensprobe.suites as suites
from lensprobe.cli import main as cli_main

BUNDLED = ("php", "csharp", "go", "cpp")

#: the Babel Tower paper, Appendix A.1: target form -> Python forms
PAPER_PAIRS = {
    "php": {"strlen": ["len"], "count": ["len"], "sort": ["sorted"], "gettype": ["type"], "array_sum": ["sum"]},
    "csharp": {"Console.WriteLine": ["print"], "Console.ReadLine": ["input"], ".IndexOf": [".find", ".index"],
               "catch": ["except"], ".Add": [".append"]},
    "go": {"=append": [".append"], "true": ["True"], "false": ["False"], "func": ["def"], "&&": ["and"],
           "||": ["or"], "!": ["not"], "nil": ["None"]},
    "cpp": {".push_back": [".append"], "catch": ["except"], "&&": ["and"], "||": ["or"], "!": ["not"],
            ".erase": [".pop"], "to_string": ["str"]},
}
FIRST_LINE = {"php": "<?php", "csharp": "using System", "go": "package ", "cpp": None}
WORD = re.compile(r"[A-Za-z0-9_]")


def _balanced(code: str) -> bool:
    """Brackets balance outside string/char literals and // comments."""
    pairs = {")": "(", "]": "[", "}": "{"}
    stack: list[str] = []
    i, n = 0, len(code)
    while i < n:
        c = code[i]
        if c in "\"'":
            j = i + 1
            while j < n and code[j] != c:
                j += 2 if code[j] == "\\" else 1
            if j >= n:
                return False
            i = j + 1
            continue
        if code.startswith("//", i):
            i = code.find("\n", i)
            if i < 0:
                break
            continue
        if c in "([{":
            stack.append(c)
        elif c in pairs:
            if not stack or stack.pop() != pairs[c]:
                return False
        i += 1
    return not stack


@pytest.mark.parametrize("name", BUNDLED)
def test_bundled_suite_validates_and_covers_paper_pairs(name):
    report = suites.validate_suite(name)
    assert report.ok, report.format()
    suite = lensprobe.load_suite(name)
    assert suite.language == name and suite.reference_language == "python"
    got = {spec.target_forms[0]: list(spec.reference_forms) for spec in suite.identifiers}
    assert got == PAPER_PAIRS[name]


@pytest.mark.parametrize("name", BUNDLED)
def test_bundled_suite_renders_distinct_deterministic_prompts(name):
    suite = lensprobe.load_suite(name)
    a, b, c = suite.render(seed=0), suite.render(seed=0), suite.render(seed=1)
    assert [i.prompt for i in a] == [i.prompt for i in b]
    for spec in suite.identifiers:
        pa = [i.prompt for i in a if i.identifier == spec.id]
        pc = [i.prompt for i in c if i.identifier == spec.id]
        assert len(set(pa)) == len(pa) >= 20, spec.id
        assert len({i.template_id for i in a if i.identifier == spec.id}) >= 3, spec.id
        assert pa != pc and set(pa) != set(pc), f"{spec.id}: seeds 0 and 1 render the same prompts"
    limited = suite.render(seed=0, limit=10)
    assert all(sum(i.identifier == s.id for i in limited) == 10 for s in suite.identifiers)


@pytest.mark.parametrize("name", BUNDLED)
def test_prompts_end_exactly_where_the_identifier_goes(name):
    suite = lensprobe.load_suite(name)
    for item in suite.render(seed=3):
        where = f"{name}/{item.identifier}/{item.template_id}"
        lead, core = suites.split_form(item.target_forms[0])
        assert "{{" not in item.prompt + item.suffix, where
        assert item.prompt.strip(), where
        if core:  # an identifier: the prompt must not end inside a word, nor must the rest continue it
            assert not WORD.match(item.prompt[-1]), where
            assert not WORD.match(item.suffix[:1] or " "), where
            if lead == ".":
                assert item.prompt.endswith("."), where
            if lead == "=":
                assert item.prompt.endswith("= "), where
        else:  # operators: the next character of the completed code is an operand or a space
            assert item.suffix[:1] not in "&|!=", where
        # template-level check: the completed snippet is well-formed code
        code = item.completion
        assert _balanced(code), f"{where}: unbalanced brackets in\n{code}"
        if FIRST_LINE[name]:
            assert code.startswith(FIRST_LINE[name]), where
        assert code.count(item.written_target) >= 1


def test_item_completion_inserts_written_form():
    suite = lensprobe.load_suite("csharp")
    item = next(i for i in suite.render() if i.identifier == ".IndexOf")
    assert item.written_target == "IndexOf"
    assert item.completion == item.prompt + "IndexOf" + item.suffix
    assert suites.split_form("=append") == ("=", "append")
    assert suites.split_form("&&") == ("&&", "")
    assert suites.split_form("Console.WriteLine") == ("", "Console.WriteLine")


# --------------------------------------------------------------------------- validation errors
GOOD = """\
language: rust
version: 1
n_prompts: 10
slots:
  v: [a, b, c, d, e, f, g, h, i, j, k, l]
identifiers:
  - id: println
    target_forms: ["println!"]
    reference_forms: [print]
    templates:
      - id: t
        text: |
          fn main() {
              let {{v}} = 1;
              {{@}}("{}", {{v}});
          }
"""


def _write(tmp_path, text, name="bad.yaml"):
    p = tmp_path / name
    p.write_text(text)
    return p


def _entries(report):
    return {(i.entry, i.message) for i in report.errors}


def test_good_minimal_suite_validates(tmp_path):
    p = _write(tmp_path, GOOD, "rust.yaml")
    report = suites.validate_suite(p)
    assert report.ok, report.format()
    suite = suites.load_suite(p)
    items = suite.render(seed=0)
    assert len(items) == 10
    assert items[0].prompt.endswith("    ") and items[0].suffix.startswith('("{}"')


def test_malformed_yaml_names_file_and_line(tmp_path):
    p = _write(tmp_path, "language: php\nidentifiers: [\n  - id: x\n")
    report = suites.validate_suite(p)
    assert not report.ok
    msg = str(report.errors[0])
    assert msg.startswith(f"{p.absolute()}: line ") and "malformed YAML" in msg  # the full path
    with pytest.raises(suites.SuiteError, match="bad.yaml"):
        suites.load_suite(p)


def test_unknown_slot_names_entry(tmp_path):
    p = _write(tmp_path, GOOD.replace("{{@}}(", "{{@}}({{fname}}, "))
    report = suites.validate_suite(p)
    assert ("identifiers[0].templates[0]", "unknown slot {{fname}}") in _entries(report)
    assert f"{p.absolute()}: identifiers[0].templates[0]: error: unknown slot {{{{fname}}}}" in report.format()


def test_missing_and_unknown_fields(tmp_path):
    p = _write(tmp_path, GOOD.replace("    target_forms: [\"println!\"]\n", "").replace("version: 1\n",
                                                                                    "version: 1\ncolour: red\n"))
    entries = _entries(suites.validate_suite(p))
    assert ("identifiers[0]", "missing required field 'target_forms'") in entries
    assert any(e == "colour" and "unknown field" in m for e, m in entries)
    p2 = _write(tmp_path, GOOD.replace("language: rust\n", ""), "nolang.yaml")
    assert ("language", "missing required field 'language'") in _entries(suites.validate_suite(p2))


def test_duplicate_ids_cursor_and_too_few_prompts(tmp_path):
    ident = GOOD[GOOD.index("  - id: println"):]
    p = _write(tmp_path, GOOD + ident)
    entries = _entries(suites.validate_suite(p))
    assert any(e == "identifiers[1].id" and "duplicate id 'println'" in m for e, m in entries)

    p = _write(tmp_path, GOOD.replace("{{@}}", ""), "nocursor.yaml")
    entries = _entries(suites.validate_suite(p))
    assert any(e == "identifiers[0].templates[0]" and "cursor" in m for e, m in entries)

    p = _write(tmp_path, GOOD.replace("[a, b, c, d, e, f, g, h, i, j, k, l]", "[a, b, c]"), "few.yaml")
    entries = _entries(suites.validate_suite(p))
    assert any(e == "identifiers[0]" and "only 3 distinct prompts" in m for e, m in entries)


def test_structured_slots_and_bad_field(tmp_path):
    text = GOOD.replace("  v: [a, b, c, d, e, f, g, h, i, j, k, l]\n",
                        "  v: [a, b, c, d, e, f, g, h, i, j, k, l]\n  ty:\n    - {t: i32, x: '1'}\n"
                        "    - {t: f64, x: '1.0'}\n").replace("let {{v}} = 1;", "let {{v}}: {{ty.t}} = {{ty.x}};")
    p = _write(tmp_path, text, "ok.yaml")
    suite = suites.load_suite(p)
    for item in suite.render(seed=2):
        assert ("i32 = 1;" in item.prompt) != ("f64 = 1.0;" in item.prompt)
    p = _write(tmp_path, text.replace("{{ty.x}}", "{{ty.y}}"), "badfield.yaml")
    assert any("has no field 'y'" in m for _, m in _entries(suites.validate_suite(p)))


def test_cli_validate_and_render(tmp_path, capsys):
    good = _write(tmp_path, GOOD, "rust.yaml")
    bad = _write(tmp_path, GOOD.replace("{{@}}(", "{{@}}({{fname}}, "))
    assert cli_main(["probes", "validate", str(good)]) == 0
    assert cli_main(["probes", "validate", str(good), str(bad)]) == 1
    err = capsys.readouterr().err
    assert "bad.yaml: identifiers[0].templates[0]: error: unknown slot {{fname}}" in err
    assert cli_main(["probes", "render", str(good), "--seed", "0", "--limit", "10"]) == 0
    out = capsys.readouterr().out
    assert out.count("### rust println") == 10
    prompts = [p.prompt for p in suites.load_suite(good).render(seed=0)]
    assert prompts[0] + "\u2038" in out
    assert cli_main(["probes", "render", "no-such-suite"]) == 2
    assert cli_main(["probes", "validate", str(tmp_path / "missing.yaml")]) == 2


# --------------------------------------------------------------------------- discovery
def test_list_suites_env_dir_and_entry_points(tmp_path, monkeypatch):
    user = tmp_path / "user"
    user.mkdir()
    _write(user, GOOD, "rust.yaml")
    monkeypatch.setenv(suites.ENV_VAR, str(user))
    assert {"php", "csharp", "go", "cpp", "rust"} <= set(lensprobe.list_suites())
    assert lensprobe.load_suite("rust").language == "rust"

    # a plugin package shipping YAML files in its module directory + one exposing a callable
    pkg = tmp_path / "site" / "plugsuites"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    _write(pkg, GOOD.replace("language: rust", "language: zig"), "zig.yaml")
    other = tmp_path / "elsewhere.yaml"
    other.write_text(GOOD.replace("language: rust", "language: kotlin"))
    (tmp_path / "site" / "plugfn.py").write_text(f"def suite_path():\n    return {str(other)!r}\n")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    eps = importlib.metadata.EntryPoints([
        importlib.metadata.EntryPoint("plug", "plugsuites", suites.ENTRY_POINT_GROUP),
        importlib.metadata.EntryPoint("kotlin", "plugfn:suite_path", suites.ENTRY_POINT_GROUP),
    ])
    monkeypatch.setattr(importlib.metadata, "entry_points", lambda group=None: eps if group else eps)
    names = set(lensprobe.list_suites())
    assert {"zig", "kotlin", "rust", "php"} <= names
    assert lensprobe.load_suite("zig").language == "zig"
    assert lensprobe.load_suite("kotlin").language == "kotlin"
    with pytest.raises(KeyError, match="unknown suite 'nope'"):
        lensprobe.load_suite("nope")


def test_builtin_dir_is_the_package_data():
    from lensprobe.suites.discovery import builtin_dir

    d = builtin_dir()
    assert d is not None and (d / "php.yaml").is_file()


# --------------------------------------------------------------------------- token sets
def test_token_sets_first_tokens_and_collisions(suite_bpe):
    tok = suite_bpe

    def first(text):
        ids = tok.encode(text, add_special_tokens=False)
        return ids[0]

    go = lensprobe.load_suite("go")
    sets = go.token_sets(tok)
    # Go `append` vs Python `.append`: both are written as `append` -> same token -> collision
    assert tok.convert_ids_to_tokens([first("append")]) == ["append"]
    assert first("append") in sets["=append"].shared
    assert sets["=append"].collision
    # operators: the first token of the form and of " form"
    assert sets["&&"].target == {first("&&"), first(" &&")} - {first(" ")}
    assert sets["nil"].target == {first("nil"), first(" nil")} - {first(" ")}
    assert sets["nil"].reference == {first("None"), first(" None")} - {first(" ")}
    assert not sets["nil"].collision
    # member forms use the word after the dot
    cs = lensprobe.load_suite("csharp").token_sets(tok)
    assert first("IndexOf") in cs[".IndexOf"].target
    assert cs[".IndexOf"].reference >= {first("find"), first("index")}
    assert first(".") not in cs[".IndexOf"].target | cs[".IndexOf"].reference

    report = suites.validate_suite("go", tokenizer=tok)
    msgs = [str(i) for i in report.issues if "collide" in i.message]
    go_file = suites.resolve_suite_path("go").absolute()
    assert any(m.startswith(f"{go_file}: identifiers[0] (=append): warning: token sets collide on 'append'")
               for m in msgs), msgs
    assert report.ok  # collisions are warnings: the probe excludes the pair


def test_token_forms_override_and_strict_cli(suite_bpe, tmp_path, capsys):
    text = GOOD.replace("    reference_forms: [print]\n",
                        "    reference_forms: [print]\n    token_forms: {target: [println], reference: [println]}\n")
    p = _write(tmp_path, text, "coll.yaml")
    suite = suites.load_suite(p)
    ts = suite.token_sets(suite_bpe)["println"]
    first = suite_bpe.encode("println", add_special_tokens=False)[0]
    assert ts.target == ts.reference == {first} and ts.collision
    suite_bpe.save_pretrained(tmp_path / "tok")
    assert cli_main(["probes", "validate", str(p), "--tokenizer", str(tmp_path / "tok")]) == 0
    assert cli_main(["probes", "validate", str(p), "--tokenizer", str(tmp_path / "tok"), "--strict"]) == 1
    assert "collide" in capsys.readouterr().err


def test_authoring_guide_example_validates(tmp_path):
    """The worked example in probes/README.md is a valid suite that renders as the guide shows."""
    guide = (Path(suites.__file__).resolve().parents[2] / "probes" / "README.md").read_text()
    block = guide.split("Save as `rust.yaml`")[1].split("```yaml\n", 1)[1].split("```\n", 1)[0]
    path = tmp_path / "rust.yaml"
    path.write_text(block)
    report = suites.validate_suite(path)
    assert report.ok and not report.warnings, report.format()
    first = suites.load_suite(path).render(seed=0, limit=1)[0]
    assert first.prompt + "\u2038" in guide.replace("\n...\n", "\n")


def test_rendering_is_stable_across_processes():
    """Rendering depends only on the seed (not on PYTHONHASHSEED or process state)."""
    import hashlib
    import os
    import subprocess

    code = ("import hashlib, lensprobe; s = lensprobe.load_suite('go');"
            "print(hashlib.sha256('\\x00'.join(i.prompt for i in s.render(seed=7)).encode()).hexdigest())")
    env = dict(os.environ, PYTHONHASHSEED="12345")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    here = hashlib.sha256("\x00".join(i.prompt for i in lensprobe.load_suite("go").render(seed=7)).encode())
    assert out.stdout.strip() == here.hexdigest()


def test_identical_forms_fail_without_a_tokenizer(tmp_path):
    """`None` / `None` cannot tell the languages apart with any tokenizer: an error, no tokenizer needed."""
    same = GOOD.replace('target_forms: ["println!"]', "target_forms: [None]").replace(
        "reference_forms: [print]", "reference_forms: [None]")
    p = _write(tmp_path, same, "same.yaml")
    report = suites.validate_suite(p)
    assert not report.ok
    (issue,) = report.errors
    assert issue.entry == "identifiers[0] (println)" and "share ['None']" in issue.message
    assert str(issue).startswith(str(p.absolute()))
    with pytest.raises(suites.SuiteError, match="share"):
        suites.load_suite(p)
    # forms that write the same word after different punctuation (.append / =append) collide: a warning
    go_like = GOOD.replace('target_forms: ["println!"]', 'target_forms: ["=append"]').replace(
        "reference_forms: [print]", "reference_forms: [.append]")
    report = suites.validate_suite(_write(tmp_path, go_like, "go_like.yaml"))
    assert report.ok and any("same word ['append']" in w.message for w in report.warnings)


def test_validate_a_directory_checks_every_suite_file(tmp_path, capsys):
    d = tmp_path / "suites"
    d.mkdir()
    good = _write(d, GOOD, "rust.yaml")
    bad = _write(d, GOOD.replace("{{@}}(", "{{@}}({{fname}}, "), "bad.yml")
    (d / "notes.txt").write_text("not a suite")
    assert cli_main(["probes", "validate", str(d)]) == 1
    captured = capsys.readouterr()
    assert f"{good.absolute()}: OK" in captured.out
    assert f"{bad.absolute()}: identifiers[0].templates[0]: error: unknown slot" in captured.err
    assert "notes.txt" not in captured.out + captured.err
    bad.unlink()
    assert cli_main(["probes", "validate", str(d), "--strict"]) == 0
    empty = tmp_path / "empty"
    empty.mkdir()
    assert cli_main(["probes", "validate", str(empty)]) == 2
    assert f"{empty.absolute()}: the directory holds no suite files" in capsys.readouterr().err
    with pytest.raises(FileNotFoundError, match="is a directory"):
        suites.load_suite(str(d) + "/")


def test_every_schema_key_is_documented():
    """Each key a suite file may have (min_prompts and source included) is in the authoring guide's schema."""
    from lensprobe.suites.schema import IDENT_KEYS, SUITE_KEYS, TEMPLATE_KEYS

    guide = (Path(suites.__file__).resolve().parents[2] / "probes" / "README.md").read_text()
    schema = guide.split("## Schema", 1)[1].split("```", 2)[1]
    keys = {line.split(":", 1)[0].strip().lstrip("- ") for line in schema.splitlines() if ":" in line}
    assert SUITE_KEYS | IDENT_KEYS | TEMPLATE_KEYS <= keys, (SUITE_KEYS | IDENT_KEYS | TEMPLATE_KEYS) - keys
    docs = (Path(suites.__file__).resolve().parents[2] / "docs" / "suites.md").read_text()
    assert "min_prompts" in docs and "`source`" in docs
