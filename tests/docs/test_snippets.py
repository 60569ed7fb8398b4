"""Every ```python block of README.md and docs/*.md runs as written.

The convention (README.md, "Snippets"): snippets run in a directory where the quick demo has run
(``lensprobe demo --quick --out runs/demo``), with ``../shared/data`` beside it as beside a checkout;
the blocks of one page run in order, in one namespace, like a notebook. A block whose first line is
``# not run: <reason>`` is skipped (hub downloads); that list stays short. Each page runs in a fresh
Python process in its own directory (``runs/demo`` linked to the session's quick demo, see
tests/conftest.py), so a page cannot lean on another's state.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PAGES = ["README.md"] + sorted(str(p.relative_to(REPO)) for p in (REPO / "docs").glob("*.md"))
NOT_RUN = "# not run:"
#: the most blocks that may be skipped (each needs a reason on its first line)
MAX_NOT_RUN = 3

_BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)

#: the driver run in the page's process: each block from its own file (tracebacks and nnsight read the source)
_DRIVER = """
import json, runpy, sys, traceback
ns = {}
for block in json.load(open(sys.argv[1])):
    print("=== " + block["where"], flush=True)
    try:
        ns = runpy.run_path(block["file"], init_globals=ns, run_name="__main__")
    except BaseException:
        traceback.print_exc()
        print("FAILED: " + block["where"], file=sys.stderr, flush=True)
        sys.exit(1)
"""


def snippets(page: str) -> list[tuple[int, str]]:
    """``(line, code)`` of every ```python block of ``page`` (line: the fence's, 1-based)."""
    text = (REPO / page).read_text()
    return [(text[:m.start()].count("\n") + 1, m.group(1)) for m in _BLOCK.finditer(text)]


def _corpus_files(where: Path) -> None:
    """The inputs docs/pretrain-data.md reads: a source tree, a JSONL and a parquet file in The Stack's
    layout, and a ``datasets`` dataset saved to disk."""
    import pandas as pd

    rows = [{"content": "def f(xs):\n    return len(xs)\n", "lang": "Python", "path": "a.py"},
            {"content": "<?php\nfunction f($xs) { return count($xs); }\n", "lang": "PHP", "path": "b.php"}]
    (where / "corpus").mkdir()
    for row in rows:
        (where / "corpus" / row["path"]).write_text(row["content"])
    (where / "stack").mkdir()
    (where / "stack" / "part-0.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    pd.DataFrame(rows).to_parquet(where / "data.parquet")
    import datasets

    datasets.Dataset.from_list(rows).save_to_disk(str(where / "saved_dataset"))


def _source_files(where: Path) -> None:
    """The inputs docs/lape.md reads: a directory of Python files and a JSONL of PHP documents
    (embedded-corpus programs)."""
    from pretrain.corpora import open_corpus

    corpus = open_corpus("embedded")
    (where / "src" / "py").mkdir(parents=True)
    for i in range(8):
        (where / "src" / "py" / f"prog{i}.py").write_text(corpus.document("python", i).text)
    (where / "php.jsonl").write_text("".join(json.dumps({"text": corpus.document("php", i).text}) + "\n"
                                             for i in range(8)))


_CONTEXT = {"docs/pretrain-data.md": _corpus_files, "docs/lape.md": _source_files}


@pytest.fixture(scope="session")
def snippet_root(quick_demo):
    """The directory holding one working directory per page, beside ``shared`` (the data's link)."""
    return quick_demo.workdir.parent


def test_not_run_list_is_short_and_says_why():
    skipped = [(page, line, code.splitlines()[0]) for page in PAGES for line, code in snippets(page)
               if code.startswith(NOT_RUN)]
    assert len(skipped) <= MAX_NOT_RUN, skipped
    assert all(len(first) > len(NOT_RUN) + 5 for _, _, first in skipped), skipped  # a reason follows
    assert sum(len(snippets(page)) for page in PAGES) >= 25  # the pages still have their snippets


@pytest.mark.parametrize("page", [p for p in PAGES if snippets(p)])
def test_snippets_run_as_written(page, snippet_root, quick_demo, tmp_path):
    workdir = snippet_root / ("page-" + page.replace("/", "-").removesuffix(".md"))
    workdir.mkdir()
    (workdir / "runs").mkdir()
    (workdir / "runs" / "demo").symlink_to(quick_demo.out, target_is_directory=True)
    if page in _CONTEXT:
        _CONTEXT[page](workdir)
    blocks = []
    for line, code in snippets(page):
        if code.startswith(NOT_RUN):
            continue
        file = tmp_path / f"{Path(page).stem}_{line}.py"
        file.write_text(code)
        blocks.append({"where": f"{page}:{line}", "file": str(file)})
    (tmp_path / "blocks.json").write_text(json.dumps(blocks))
    env = {**os.environ, "MPLBACKEND": "Agg", "PYTHONPATH": str(REPO)}
    proc = subprocess.run([sys.executable, "-c", _DRIVER, str(tmp_path / "blocks.json")], cwd=workdir,
                          capture_output=True, text=True, timeout=1200, env=env)
    assert proc.returncode == 0, f"{proc.stderr[-4000:]}\n--- stdout:\n{proc.stdout[-1500:]}"
    assert proc.stdout.count("=== ") == len(blocks)
