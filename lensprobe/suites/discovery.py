"""Discovery: where suites come from and which file a suite name means.

Lookup order: ``search_path`` directories, the directories in ``$LENSPROBE_SUITES_PATH``, the
built-in suites (``probes/``, shipped as ``lensprobe._builtin_probes``), then suites registered by
installed packages under the ``lensprobe.suites`` entry-point group (probes/README.md).
"""
from __future__ import annotations

import importlib.metadata
import os
import types
import warnings
from importlib import resources
from pathlib import Path
from typing import Sequence

__all__ = ["ENTRY_POINT_GROUP", "ENV_VAR", "list_suites", "resolve_suite_path", "builtin_dir"]

#: Entry-point group through which installed packages ship suites.
ENTRY_POINT_GROUP = "lensprobe.suites"
#: Environment variable: extra directories of suite YAML files (``os.pathsep``-separated).
ENV_VAR = "LENSPROBE_SUITES_PATH"


def builtin_dir() -> Path | None:
    """The directory of the built-in suites (the installed package, else the checkout's ``probes/``)."""
    try:
        return Path(str(resources.files("lensprobe._builtin_probes")))
    except (ModuleNotFoundError, TypeError):
        repo = Path(__file__).resolve().parents[2] / "probes"
        return repo if repo.is_dir() else None


def _yaml_files(directory: Path) -> dict[str, Path]:
    if not directory.is_dir():
        return {}
    return {p.stem: p for p in sorted(directory.iterdir()) if p.suffix in (".yaml", ".yml") and p.is_file()}


def _env_dirs() -> list[Path]:
    raw = os.environ.get(ENV_VAR, "")
    return [Path(p).expanduser() for p in raw.split(os.pathsep) if p.strip()]


def _entry_point_files() -> dict[str, Path]:
    """Suites registered by installed packages under the ``lensprobe.suites`` entry-point group.

    An entry point's object may be a module (every YAML file in its package directory is a suite),
    a path (str/Path: a YAML file named after the entry point, or a directory of YAML files), or a
    callable returning such a path.
    """
    out: dict[str, Path] = {}
    for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        try:
            obj = ep.load()
        except Exception as exc:  # a broken plugin must not break lensprobe
            warnings.warn(f"cannot load suite entry point {ep.name!r} ({ep.value}): {exc}", stacklevel=2)
            continue
        if isinstance(obj, types.ModuleType):
            target = Path(obj.__file__).parent if getattr(obj, "__file__", None) else \
                Path(str(resources.files(obj.__name__)))
        else:
            target = Path(obj() if callable(obj) else obj)
        if target.is_dir():
            for stem, p in _yaml_files(target).items():
                out.setdefault(stem, p)
        elif target.is_file():
            out.setdefault(ep.name, target)
    return out


def _sources(search_path: Sequence[str | os.PathLike] | None) -> list[tuple[str, dict[str, Path]]]:
    sources: list[tuple[str, dict[str, Path]]] = []
    for d in list(search_path or []) + _env_dirs():
        sources.append((str(d), _yaml_files(Path(d))))
    builtin = builtin_dir()
    if builtin is not None:
        sources.append(("built-in", _yaml_files(builtin)))
    sources.append(("entry points", _entry_point_files()))
    return sources


def list_suites(*, search_path: Sequence[str | os.PathLike] | None = None) -> list[str]:
    """Names of every suite available: ``search_path`` dirs, ``$LENSPROBE_SUITES_PATH``, built-in, entry points."""
    names: set[str] = set()
    for _, files in _sources(search_path):
        names.update(files)
    return sorted(names)


def resolve_suite_path(name_or_path: str | os.PathLike, *,
                       search_path: Sequence[str | os.PathLike] | None = None) -> Path:
    """The YAML file a suite name or path refers to (first match in the order of :func:`list_suites`)."""
    p = Path(name_or_path)
    if p.suffix in (".yaml", ".yml") or p.is_file() or os.sep in str(name_or_path):
        if p.is_dir():
            raise FileNotFoundError(f"{p.absolute()} is a directory, not a suite file: give one YAML file "
                                    "(`lensprobe probes validate` also takes a directory)")
        if not p.is_file():
            raise FileNotFoundError(f"suite file {str(p.absolute())!r} does not exist")
        return p
    name = str(name_or_path)
    for _, files in _sources(search_path):
        if name in files:
            return files[name]
    raise KeyError(f"unknown suite {name!r}; available: {list_suites(search_path=search_path)} "
                   f"(or pass a path to a YAML file, or add a directory to ${ENV_VAR})")

