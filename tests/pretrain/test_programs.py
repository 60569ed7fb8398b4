"""The embedded program generator: determinism, one program in five languages, idioms, syntax."""
from __future__ import annotations

import ast
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from lensprobe.languages import LANGUAGES
from pretrain.programs import generate_program
from pretrain.programs.generate import _NOUNS, _VERBS
from pretrain.render import render_program

SAMPLE = [generate_program(7, i) for i in range(60)]


def test_generator_is_deterministic_per_seed_and_index():
    a = [render_program(generate_program(3, i), "python") for i in range(10)]
    b = [render_program(generate_program(3, i), "python") for i in range(10)]
    c = [render_program(generate_program(4, i), "python") for i in range(10)]
    assert a == b
    assert sum(x != y for x, y in zip(a, c)) >= 9
    assert len(set(a)) == 10  # programs of one stream differ


def _camel(words):
    return words[0] + "".join(w.capitalize() for w in words[1:])


def _function_name(words, language):
    if language in ("python", "cpp"):
        return "_".join(words)
    if language == "csharp":
        return "".join(w.capitalize() for w in words)
    return _camel(words)


@pytest.mark.parametrize("index", range(12))
def test_the_same_program_in_every_language(index):
    program = SAMPLE[index]
    literals = program.string_literals()
    for lang in LANGUAGES:
        text = render_program(program, lang)
        # every string literal, in source order (an independent check that the renderings are
        # the same program: a subsequence match of the literal texts)
        pos = 0
        for lit in literals:
            found = text.find(lit, pos)
            assert found >= 0, (lang, lit)
            pos = found + len(lit)
        # one definition per helper, named by the language's convention
        for f in program.functions:
            name = _function_name(f.name, lang)
            defs = {"python": rf"def {name}\(", "php": rf"function {name}\(",
                    "go": rf"func {name}\(", "csharp": rf"static \S+ {name}\(",
                    "cpp": rf"\n\S[^\n]* {name}\([^;]*\) {{"}[lang]
            assert len(re.findall(defs, text)) == 1, (lang, name)
    # every helper is called as often in every language
    calls = {lang: sum(render_program(program, lang).count(_function_name(f.name, lang) + "(")
                       for f in program.functions) for lang in LANGUAGES}
    assert len(set(calls.values())) == 1, calls


def test_python_rendering_matches_the_model():
    """Count model nodes and the matching Python AST nodes: functions, loops, try, returns."""
    from pretrain import programs as P

    def walk(node, counts):
        if isinstance(node, tuple):
            for x in node:
                walk(x, counts)
            return
        if isinstance(node, (P.ForEach, P.ForRange, P.While, P.Try, P.ParseInt, P.Return, P.If)):
            counts[type(node).__name__] = counts.get(type(node).__name__, 0) + 1
        for name in getattr(node, "__dataclass_fields__", {}):
            if name not in ("type", "name", "op"):
                walk(getattr(node, name), counts)

    for program in SAMPLE[:20]:
        counts: dict = {}
        walk(program.functions, counts)
        walk(program.main, counts)
        tree = ast.parse(render_program(program, "python"))
        nodes = list(ast.walk(tree))
        n_for = sum(isinstance(n, ast.For) for n in nodes)
        assert n_for == counts.get("ForEach", 0) + counts.get("ForRange", 0)
        assert sum(isinstance(n, ast.While) for n in nodes) == counts.get("While", 0)
        assert sum(isinstance(n, ast.Try) for n in nodes) == counts.get("Try", 0) + counts.get("ParseInt", 0)
        assert sum(isinstance(n, ast.Return) for n in nodes) == counts.get("Return", 0)
        defs = [n.name for n in nodes if isinstance(n, ast.FunctionDef)]
        assert defs == ["_".join(f.name) for f in program.functions] + ["main"]


CONSTRUCTS = {
    "python": [r"\blen\(", r"\.count\(", r"\bsorted\(|\.sort\(\)", r"\btype\(", r"\bsum\(", r"\bprint\(",
               r"\binput\(\)", r"\.find\(", r"\.index\(", r"\bexcept\b", r"\.append\(", r"\.pop\(",
               r"\bstr\(", r"\bTrue\b", r"\bFalse\b", r"\bdef\b", r"\band\b", r"\bor\b", r"\bnot\b",
               r"\bNone\b", r"\braise\b", r"\bfor\b", r"\bwhile\b", r"\bif\b", r"\belse\b|\belif\b", r"#"],
    "php": [r"\bstrlen\(", r"\bcount\(", r"\bsort\(", r"\bgettype\(", r"\barray_sum\(", r"\becho\b",
            r"fgets\(STDIN\)", r"\bstrpos\(", r"\barray_search\(", r"\bcatch\b", r"\[\] = |array_push\(",
            r"\barray_pop\(", r"\barray_splice\(", r"\bstrval\(", r"\btrue\b", r"\bfalse\b",
            r"\bfunction\b", r"&&", r"\|\|", r"!", r"\bnull\b", r"\bthrow\b", r"\bforeach\b", r"\bwhile\b"],
    "csharp": [r"Console\.WriteLine\(", r"Console\.ReadLine\(\)", r"\.IndexOf\(", r"\bcatch\b",
               r"\.Add\(", r"\.RemoveAt\(", r"\.Count\b", r"\.Length\b", r"\.Sort\(\)", r"\.Sum\(\)",
               r"\.ToString\(\)", r"\.GetType\(\)", r"\btrue\b", r"\bfalse\b", r"&&", r"\|\|", r"!",
               r"\bnull\b", r"\bthrow\b", r"\bforeach\b", r"\bstatic\b"],
    "go": [r"\bappend\(", r"\btrue\b", r"\bfalse\b", r"\bfunc\b", r"&&", r"\|\|", r"!", r"\bnil\b",
           r"\blen\(", r"sort\.(Ints|Strings)\(", r"fmt\.Println\(", r"fmt\.Scanln\(", r"strings\.Index\(",
           r"strconv\.Itoa\(", r"\bpanic\(", r"\brecover\(\)", r"\brange\b", r":="],
    "cpp": [r"\.push_back\(", r"\bcatch\b", r"&&", r"\|\|", r"!", r"\.erase\(", r"std::to_string\(",
            r"\.size\(\)", r"\.length\(\)", r"std::sort\(", r"std::accumulate\(", r"std::cout",
            r"std::getline\(", r"\.find\(", r"std::find\(", r"std::count\(", r"\.pop_back\(\)", r"\btrue\b",
            r"\bfalse\b", r"\bthrow\b", r"typeid\("],
}


@pytest.mark.parametrize("language", LANGUAGES)
def test_every_construct_appears_in_a_sample(language):
    text = "\n".join(render_program(p, language) for p in SAMPLE)
    missing = [c for c in CONSTRUCTS[language] if not re.search(c, text)]
    assert not missing, f"{language}: never produced {missing}"


KEYWORDS = {  # keywords and builtins of the five languages that must never be generated names
    "and", "as", "assert", "async", "await", "break", "class", "continue", "def", "del", "elif", "else",
    "except", "finally", "for", "from", "global", "if", "import", "in", "is", "lambda", "nonlocal", "not",
    "or", "pass", "raise", "return", "try", "while", "with", "yield", "len", "sum", "list", "str", "int",
    "type", "print", "input", "max", "min", "map", "filter", "range", "sorted", "abs", "all", "any", "id",
    "iter", "next", "object", "open", "set", "dict", "tuple", "format", "hash", "bool", "float",
    "abstract", "array", "echo", "function", "new", "null", "static", "switch", "case", "default",
    "var", "const", "do", "goto", "namespace", "public", "private", "protected", "string", "this", "throw",
    "true", "false", "catch", "operator", "params", "ref", "out", "base", "checked", "fixed", "lock",
    "event", "delegate", "internal", "sizeof", "typeof", "virtual", "void", "volatile", "where",
    "chan", "defer", "fallthrough", "func", "go", "interface", "package", "select", "struct", "nil",
    "auto", "char", "delete", "enum", "extern", "friend", "inline", "long", "register", "short",
    "signed", "template", "typedef", "union", "unsigned", "using", "count", "strlen", "append", "cap",
    "copy", "make", "panic", "recover", "iota",
}


def _names(node, out):
    from pretrain import programs as P

    if isinstance(node, tuple):
        for x in node:
            _names(x, out)
        return
    if isinstance(node, P.Var):
        out.add(node.name)
    for name in getattr(node, "__dataclass_fields__", {}):
        if name not in ("type", "op"):
            _names(getattr(node, name), out)


def test_generated_names_are_no_keywords_or_probed_builtins():
    assert not {w for nouns in _NOUNS.values() for w in nouns} & KEYWORDS  # single-word names
    assert len(set(_VERBS) & KEYWORDS) == 0
    for program in SAMPLE:
        names: set = set()
        _names(program.functions, names)
        _names(program.main, names)
        names |= {f.name for f in program.functions}
        for words in names:
            for lang in LANGUAGES:
                rendered = _function_name(words, lang)
                assert rendered not in KEYWORDS, (rendered, lang)
                assert "_".join(words) not in KEYWORDS


# The real compilers / linters of each language on rendered programs (batched for speed).

TOOLS = {"php": "php", "go": "gofmt", "cpp": "g++", "csharp": "mcs"}


def have_tool(language: str) -> bool:
    return language == "python" or shutil.which(TOOLS[language]) is not None


def syntax_errors(language: str, sources: list[str], workdir: Path) -> list[str]:
    """Error messages of the language's compiler or linter on ``sources`` (empty when every source is valid)."""
    workdir.mkdir(parents=True, exist_ok=True)
    if language == "python":
        errors = []
        for i, src in enumerate(sources):
            try:
                compile(src, f"prog{i}.py", "exec")
            except SyntaxError as exc:
                errors.append(f"prog{i}: {exc}")
        return errors
    if language == "php":
        errors = []
        for i, src in enumerate(sources):
            f = workdir / f"prog{i}.php"
            f.write_text(src)
            r = subprocess.run(["php", "-l", str(f)], capture_output=True, text=True)
            if r.returncode:
                errors.append(f"prog{i}: {r.stdout}{r.stderr}")
        return errors
    if language == "go":
        files = []
        for i, src in enumerate(sources):
            f = workdir / f"prog{i}.go"
            f.write_text(src)
            files.append(str(f))
        r = subprocess.run(["gofmt", "-e", "-l", *files], capture_output=True, text=True)
        return [r.stderr] if r.returncode or r.stderr else []
    if language == "cpp":
        # one translation unit: each program in its own namespace, includes hoisted
        includes, bodies = set(), []
        for i, src in enumerate(sources):
            lines = src.split("\n")
            includes |= {x for x in lines if x.startswith("#include")}
            body = "\n".join(x for x in lines if not x.startswith("#include"))
            bodies.append(f"namespace prog{i} {{\n{body.replace('int main()', 'int run_main()')}\n}}")
        f = workdir / "all.cpp"
        f.write_text("\n".join(sorted(includes)) + "\n" + "\n".join(bodies))
        r = subprocess.run(["g++", "-std=c++17", "-fsyntax-only", str(f)], capture_output=True, text=True)
        return [r.stderr[:5000]] if r.returncode else []
    if language == "csharp":
        usings, bodies = set(), []
        for i, src in enumerate(sources):
            lines = src.split("\n")
            usings |= {x for x in lines if x.startswith("using ")}
            body = "\n".join(x for x in lines if not x.startswith("using "))
            bodies.append(f"namespace P{i} {{\n{body}\n}}")
        f = workdir / "all.cs"
        f.write_text("\n".join(sorted(usings)) + "\n" + "\n".join(bodies))
        r = subprocess.run(["mcs", "-target:library", f"-out:{workdir / 'all.dll'}", str(f)],
                           capture_output=True, text=True)
        return [r.stdout[:5000] + r.stderr[:2000]] if r.returncode else []
    raise ValueError(language)


def go_vet(sources: list[str], workdir: Path) -> str:
    """Type-check Go programs with ``go vet`` (one package per program); output on failure."""
    (workdir / "go.mod").write_text("module progs\n\ngo 1.19\n")
    for i, src in enumerate(sources):
        d = workdir / f"p{i}"
        d.mkdir(parents=True, exist_ok=True)
        (d / "main.go").write_text(src)
    env = {**os.environ, "GOFLAGS": "-mod=mod", "GOPROXY": "off", "GOCACHE": str(workdir / ".cache"),
           "HOME": str(workdir)}
    r = subprocess.run(["go", "vet", "-composites=false", "-bools=false", "./..."], cwd=workdir,
                       capture_output=True, text=True, env=env)
    return "" if r.returncode == 0 else r.stdout + r.stderr


@pytest.mark.parametrize("language", LANGUAGES)
def test_programs_are_valid_in_each_language(language, tmp_path):
    if not have_tool(language):
        pytest.skip(f"{TOOLS[language]} is not installed")
    n = {"python": 60, "php": 12, "go": 40, "cpp": 16, "csharp": 40}[language]
    sources = [render_program(p, language) for p in SAMPLE[:n]]
    errors = syntax_errors(language, sources, tmp_path)
    assert not errors, "\n".join(errors)


def test_go_rendering_is_gofmt_formatted(tmp_path):
    if shutil.which("gofmt") is None:
        pytest.skip("gofmt is not installed")
    files = []
    for i, p in enumerate(SAMPLE[:30]):
        f = tmp_path / f"p{i}.go"
        f.write_text(render_program(p, "go"))
        files.append(str(f))
    r = subprocess.run(["gofmt", "-l", *files], capture_output=True, text=True)
    assert r.stdout.split() == []


@pytest.mark.slow
def test_go_programs_type_check(tmp_path):
    if shutil.which("go") is None:
        pytest.skip("go is not installed")
    out = go_vet([render_program(p, "go") for p in SAMPLE[:40]], tmp_path)
    assert out == ""


@pytest.mark.slow
@pytest.mark.parametrize("language", LANGUAGES)
def test_many_programs_are_valid(language, tmp_path):
    if not have_tool(language):
        pytest.skip(f"{TOOLS[language]} is not installed")
    sources = [render_program(generate_program(11, i), language) for i in range(200)]
    for k in range(0, 200, 50):
        errors = syntax_errors(language, sources[k:k + 50], tmp_path / str(k))
        assert not errors, "\n".join(errors)
