"""Per-family program assembly: prompt + completion + tests -> the file that is executed.

* MultiPL-E: ``prompt + completion + "\\n" + tests`` (Go: a ``*_test.go`` file run by ``go test``);
* mxeval (Multi-HumanEval, MBXP): ``prompt + completion + test``; Python adds ``check(entry_point)``;
* HumanEval-X (CodeGeeX): Python prepends the harness imports; C++ prepends the standard includes
  the prompt lacks; Go is ``test_setup`` + the imports the code uses + prompt without its
  ``import`` block + completion + test, run by ``go test`` with testify.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from .datasets import Problem

#: What CodeGeeX prepends to HumanEval-X Python programs.
PYTHON_HELPER_IMPORTS = (
    "import math", "import re", "import sys", "import copy", "import datetime", "import itertools",
    "import collections", "import heapq", "import statistics", "import functools", "import hashlib",
    "import numpy", "import numpy as np", "import string", "from typing import *", "from collections import *",
)
CPP_HELPER_INCLUDES = (
    "#include<stdlib.h>", "#include<algorithm>", "#include<math.h>", "#include<stdio.h>", "#include<vector>",
    "#include<string>", "#include<climits>", "#include<cstring>", "#include<iostream>",
)
GO_HELPER_PACKAGES = ("math", "strings", "fmt", "strconv", "time", "bytes", "regexp", "sort", "math/rand",
                      "crypto/md5")


@dataclass(frozen=True)
class Program:
    """An assembled program and how to build it."""

    source: str
    #: "script" (python/php), "main" (compile then run main), "gotest" (a Go test file)
    mode: str
    language: str


def _strip_go_comments(text: str) -> str:
    return re.sub(r"//[^\n]*", "", text)


def _go_imports(block: str) -> list[str]:
    return re.findall(r'"([^"]+)"', block)


def assemble(problem: Problem, completion: str) -> Program:
    """The program that tests ``completion`` for ``problem``."""
    lang, fam = problem.language, problem.family
    if fam == "mxeval":
        src = problem.prompt + completion + problem.tests
        if lang == "python":
            src += f"\ncheck({problem.entry_point})\n"
        return Program(src, "script" if lang in ("python", "php") else "main", lang)
    if fam == "multipl-e" and not (lang == "python" and "declaration" in problem.extra):
        src = problem.prompt + completion + "\n" + problem.tests
        mode = "script" if lang in ("python", "php") else ("gotest" if lang == "go" else "main")
        return Program(src, mode, lang)
    # HumanEval-X (and the HumanEval-X-style Python file of the MultiPL-E snapshot)
    if lang == "python":
        src = "\n".join(PYTHON_HELPER_IMPORTS) + "\n" + problem.prompt + completion + "\n" + problem.tests + "\n"
        if problem.entry_point and not re.search(r"^check\(", problem.tests, flags=re.M):
            src += f"check({problem.entry_point})\n"
        return Program(src, "script", lang)
    if lang == "cpp":
        setup = "".join(s + "\n" for s in CPP_HELPER_INCLUDES if s not in problem.prompt)
        return Program(setup + "\n" + problem.prompt + completion + "\n" + problem.tests, "main", lang)
    if lang == "go":
        import_block = problem.extra.get("import", "")
        prompt = problem.prompt.replace(import_block, "") if import_block else problem.prompt
        setup = problem.extra.get("test_setup", "package main\n\nimport (\n    \"testing\"\n)\n")
        have = set(_go_imports(setup))
        body = _strip_go_comments(prompt + completion + "\n" + problem.tests)
        wanted = []
        for pkg in list(dict.fromkeys(_go_imports(import_block) + list(GO_HELPER_PACKAGES))):
            if pkg in have or pkg in wanted:
                continue
            if re.search(r"\b" + re.escape(pkg.split("/")[-1]) + r"\.", body):
                wanted.append(pkg)
        imports = ("import (\n" + "".join(f'    "{p}"\n' for p in wanted) + ")\n") if wanted else ""
        return Program(setup + "\n" + imports + prompt + completion + "\n" + problem.tests, "gotest", lang)
    raise ValueError(f"{problem.task_id}: no HumanEval-X assembly for language {lang!r}")
