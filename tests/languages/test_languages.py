"""The one language table: names, aliases, extensions."""
from __future__ import annotations

import pytest

from lensprobe.languages import (ALIASES, EXTENSIONS, LANGUAGE_INFO, LANGUAGES, UnknownLanguageError, canonical_language,
                                 canonical_language_or_none, check_language, language_info, language_of_path)


def test_canonical_names_and_their_order():
    assert LANGUAGES == ("python", "php", "csharp", "go", "cpp")
    assert tuple(LANGUAGE_INFO) == LANGUAGES


@pytest.mark.parametrize("alias, name", [
    ("Python", "python"), ("py", "python"), ("python3", "python"), (" PHP ", "php"), ("C#", "csharp"),
    ("cs", "csharp"), ("c-sharp", "csharp"), ("golang", "go"), ("go_test.go", "go"), ("C++", "cpp"),
    ("cxx", "cpp"), ("cpp", "cpp"),
])
def test_aliases(alias, name):
    assert canonical_language(alias) == name
    assert canonical_language_or_none(alias) == name
    assert language_info(alias).name == name


@pytest.mark.parametrize("name", ["rust", "java", "", "c"])
def test_unknown_names(name):
    with pytest.raises(UnknownLanguageError, match=f"unknown language {name!r}"):
        canonical_language(name)
    assert canonical_language_or_none(name) is None


def test_check_language_takes_canonical_names_only():
    assert check_language("csharp") == "csharp"
    with pytest.raises(ValueError, match="unknown language 'C#'; expected one of python, php, csharp, go, cpp"):
        check_language("C#")


def test_no_alias_or_extension_is_claimed_twice():
    aliases = [a for lang in LANGUAGE_INFO.values() for a in (lang.name, *lang.aliases)]
    exts = [e for lang in LANGUAGE_INFO.values() for e in lang.extensions]
    assert len(aliases) == len(set(aliases)) == len(ALIASES)
    assert len(exts) == len(set(exts)) == len(EXTENSIONS)
    assert all(a == a.lower() for a in aliases) and all(e.startswith(".") and e == e.lower() for e in exts)


def test_language_of_path():
    assert language_of_path("src/Main.CS") == "csharp"
    assert language_of_path("x/y.hpp") == "cpp"
    assert language_of_path("x/y.h") is None  # as often C as C++
    assert language_of_path("README") is None


def test_comment_syntax_and_tools():
    assert {lang.name: lang.line_comment for lang in LANGUAGE_INFO.values()} == {
        "python": "#", "php": "//", "csharp": "//", "go": "//", "cpp": "//"}
    assert LANGUAGE_INFO["csharp"].tools == ("mcs", "mono") and LANGUAGE_INFO["python"].tools == ()
