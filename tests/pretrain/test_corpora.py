"""Corpus readers: embedded, files, jsonl, parquet, hf_disk."""
from __future__ import annotations

import gzip
import itertools
import json

import pytest

from pretrain.corpora import EmbeddedCorpus, open_corpus
from pretrain.programs import generate_program
from pretrain.render import render_program


def take(it, n):
    return list(itertools.islice(it, n))


def test_embedded_is_deterministic_unlimited_and_parallel():
    a = open_corpus("embedded")
    b = open_corpus({"kind": "embedded", "seed": 0})
    assert a.unlimited and a.languages == ("python", "php", "csharp", "go", "cpp")
    docs = take(a.documents("go"), 5)
    assert [d.text for d in docs] == [d.text for d in take(b.documents("go"), 5)]
    # the i-th document of every language is the i-th program of the seed's stream
    for i, doc in enumerate(docs):
        assert doc.text == render_program(generate_program(0, i), "go")
        assert doc.language == "go" and doc.source == f"embedded:0:{i}"
    other = take(open_corpus({"kind": "embedded", "seed": 1}).documents("go"), 5)
    assert all(x.text != y.text for x, y in zip(docs, other))
    assert open_corpus("embedded", languages=["php"]).languages == ("php",)
    with pytest.raises(ValueError, match="no language 'go'"):
        open_corpus("embedded", languages=["php"]).documents("go")


def test_parallel_pairs_put_a_program_before_its_translation():
    corpus = EmbeddedCorpus(seed=2, parallel_pairs=0.5)
    docs = take(corpus.documents("php"), 40)
    pairs = [(i, d) for i, d in enumerate(docs) if ":pair:" in d.source]
    assert 8 <= len(pairs) <= 32  # about half
    for i, doc in pairs:
        program = generate_program(2, i)
        python, php = render_program(program, "python"), render_program(program, "php")
        assert doc.text.index(python) < doc.text.index(php)
        assert doc.source.endswith(":pair:python")
    singles = [(i, d) for i, d in enumerate(docs) if ":pair:" not in d.source]
    assert all(d.text == render_program(generate_program(2, i), "php") for i, d in singles)
    # partners come from the corpus's own languages only
    only_python = EmbeddedCorpus(seed=2, parallel_pairs=1.0, languages=["python"])
    assert all(":pair:" not in d.source for d in take(only_python.documents("python"), 5))
    two = EmbeddedCorpus(seed=2, parallel_pairs=1.0, languages=["python", "go"])
    assert all(d.source.endswith(":pair:go") for d in take(two.documents("python"), 5))
    with pytest.raises(ValueError, match="parallel_pairs"):
        EmbeddedCorpus(parallel_pairs=1.5)


def test_files_corpus_reads_by_extension_with_licences(tmp_path):
    (tmp_path / "pkg" / "sub").mkdir(parents=True)
    (tmp_path / "pkg" / "a.py").write_text("print(1)\n")
    (tmp_path / "pkg" / "sub" / "b.py").write_text("x = 2\n")
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "c.go").write_text("package main\n")
    (tmp_path / "other" / "d.hpp").write_text("int f();\n")
    (tmp_path / "other" / "e.h").write_text("int g();\n")       # ambiguous C/C++: skipped
    (tmp_path / "other" / "notes.txt").write_text("hello\n")
    (tmp_path / "other" / "bad.py").write_bytes(b"\xff\xfe\x00bad")  # not UTF-8: skipped
    (tmp_path / "corpus.json").write_text(json.dumps({
        "licence": "unknown", "sources": [{"path": "pkg", "licence": "PSF-2.0"}]}))
    corpus = open_corpus({"kind": "files", "path": str(tmp_path)})
    assert corpus.languages == ("python", "go", "cpp")
    py = list(corpus.documents("python"))
    assert [d.source for d in py] == ["pkg/a.py", "pkg/sub/b.py"]
    assert [d.text for d in py] == ["print(1)\n", "x = 2\n"]
    assert {d.licence for d in py} == {"PSF-2.0"}
    assert [d.licence for d in corpus.documents("go")] == ["unknown"]
    assert [d.source for d in corpus.documents("cpp")] == ["other/d.hpp"]
    assert open_corpus(str(tmp_path)).fingerprint()["kind"] == "files"


def _records():
    return [
        {"content": "def f():\n    return 1\n", "lang": "Python", "max_stars_repo_licenses": ["MIT"]},
        {"content": "<?php echo 1;", "lang": "PHP", "max_stars_repo_licenses": ["Apache-2.0"]},
        {"content": "class A {}", "lang": "C#", "max_stars_repo_licenses": []},
        {"content": "fn main() {}", "lang": "Rust", "max_stars_repo_licenses": ["MIT"]},
        {"content": "int main() {}", "lang": "C++", "max_stars_repo_licenses": ["BSD"]},
    ]


def test_jsonl_corpus_with_language_column(tmp_path):
    path = tmp_path / "data.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in _records()) + "\n")
    corpus = open_corpus({"kind": "jsonl", "path": str(path), "content_field": "content",
                          "language_field": "lang"})
    assert corpus.languages == ("python", "php", "csharp", "cpp")
    [doc] = list(corpus.documents("csharp"))
    assert doc.text == "class A {}" and doc.licence == ""
    assert [d.licence for d in corpus.documents("python")] == ["MIT"]
    assert open_corpus(str(path)).languages == corpus.languages  # the language column is found


def test_jsonl_gz_directory_with_path_extension(tmp_path):
    rows = [{"text": "package main", "path": "a/b/main.go"}, {"text": "x = 1", "path": "x.py"},
            {"text": "print(2)", "path": "y.py"}, {"text": "README", "path": "README.md"}]
    with gzip.open(tmp_path / "part-0.jsonl.gz", "wt") as fh:
        fh.write("\n".join(json.dumps(r) for r in rows[:2]))
    (tmp_path / "part-1.jsonl").write_text("\n".join(json.dumps(r) for r in rows[2:]))
    corpus = open_corpus({"kind": "jsonl", "path": str(tmp_path), "content_field": "text"})
    assert [d.text for d in corpus.documents("python")] == ["x = 1", "print(2)"]
    assert [d.text for d in corpus.documents("go")] == ["package main"]


def test_jsonl_errors_name_the_file_and_field(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"body": "x", "lang": "Python"}\n')
    with pytest.raises(ValueError, match=r"bad\.jsonl.*content field 'content'"):
        list(open_corpus({"kind": "jsonl", "path": str(path)}).documents("python"))
    path.write_text('{"content": "x"}\n{oops\n')
    with pytest.raises(ValueError, match=r"bad\.jsonl.*no language field"):
        list(open_corpus({"kind": "jsonl", "path": str(path)}).documents("python"))
    path.write_text('{"content": "x", "lang": "Python"}\n{oops\n')
    with pytest.raises(ValueError, match=r"bad\.jsonl:2: not valid JSON"):
        list(open_corpus({"kind": "jsonl", "path": str(path)}).documents("python"))
    with pytest.raises(ValueError, match="'kind' must be one of"):
        open_corpus({"kind": "csv", "path": str(path)})
    with pytest.raises(ValueError, match="missing 'path'"):
        open_corpus({"kind": "parquet"})


def test_parquet_corpus(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.Table.from_pylist(_records())
    pq.write_table(table, tmp_path / "train.parquet", row_group_size=2)
    corpus = open_corpus({"kind": "parquet", "path": str(tmp_path / "train.parquet")})
    assert [d.text for d in corpus.documents("cpp")] == ["int main() {}"]
    assert [d.licence for d in corpus.documents("php")] == ["Apache-2.0"]
    assert corpus.languages == ("python", "php", "csharp", "cpp")


def test_hf_disk_corpus(tmp_path):
    datasets = pytest.importorskip("datasets")
    ds = datasets.Dataset.from_list([{"content": r["content"], "language": r["lang"]} for r in _records()])
    datasets.DatasetDict({"train": ds}).save_to_disk(str(tmp_path / "ds"))
    corpus = open_corpus({"kind": "hf_disk", "path": str(tmp_path / "ds")})
    assert [d.text for d in corpus.documents("python")] == ["def f():\n    return 1\n"]
    assert corpus.languages == ("python", "php", "csharp", "cpp")
    ds.save_to_disk(str(tmp_path / "plain"))
    assert [d.text for d in open_corpus(str(tmp_path / "plain")).documents("php")] == ["<?php echo 1;"]
