"""Run the real compilers / linters of each language on rendered programs (batched for speed)."""
from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

TOOLS = {"php": "php", "go": "gofmt", "cpp": "g++", "csharp": "mcs"}


def have(language: str) -> bool:
    return language == "python" or shutil.which(TOOLS[language]) is not None


def check(language: str, sources: list[str], workdir: Path) -> list[str]:
    """Error messages (empty when every source is valid)."""
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
