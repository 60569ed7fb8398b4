"""Options several commands share: ``--quiet``, ``--tokenizer`` checks and a hub series (``--hub``).

Each helper raises :class:`UsageError` with a message that names the option and says what to do;
commands print it as ``error: ...`` and exit 2.
"""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

__all__ = ["UsageError", "add_quiet", "add_hub_arguments", "check_tokenizer_path", "open_series"]


class UsageError(Exception):
    """Bad command-line input: printed as ``error: ...`` with exit code 2."""


def add_quiet(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--quiet", action="store_true",
                        help="no progress bars and no messages on stderr (errors are still printed)")


def check_tokenizer_path(value: str | None, option: str = "--tokenizer") -> Path | None:
    """The ``--tokenizer`` path, checked before any model loads: an existing ``tokenizer.json`` file or
    a directory holding tokenizer files; :class:`UsageError` naming the full path otherwise."""
    if value is None:
        return None
    from lensprobe.checkpoints.tokenizer import TOKENIZER_VOCAB_FILES, has_tokenizer

    path = Path(value).expanduser()
    hint = (f"give a tokenizer directory (with {', '.join(TOKENIZER_VOCAB_FILES[:3])}, ...) or a tokenizer.json "
            f"file, or leave {option} out to use the checkpoint's own")
    if not path.exists():
        raise UsageError(f"{option} {path.absolute()}: no such file or directory; {hint}")
    if path.is_dir() and not has_tokenizer(path):
        raise UsageError(f"{option} {path.absolute()}: the directory holds no tokenizer files; {hint}")
    return path


def add_hub_arguments(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("a checkpoint series on the Hugging Face Hub (instead of a run directory)")
    g.add_argument("--hub", metavar="REPO", default=None,
                   help="hub repository whose revisions are the checkpoints, e.g. EleutherAI/pythia-70m")
    g.add_argument("--revisions", metavar="LIST|PATTERN", default=None,
                   help="comma-separated revisions (step1000,step2000) or a glob over the repository's branches "
                        "(\"step*000\"); default: every branch named like a checkpoint")
    g.add_argument("--hub-cache", metavar="DIR", default=None, help="download cache (default: the hub's)")
    g.add_argument("--offline", action="store_true",
                   help="use only revisions already in the cache (a list, not a pattern: listing branches needs "
                        "the network)")


def _hub_revisions(text: str | None) -> list[str] | str | None:
    if text is None:
        return None
    if any(ch in text for ch in "*?["):
        return text
    items = [t.strip() for t in text.split(",") if t.strip()]
    if not items:
        raise UsageError(f"--revisions {text!r}: give revisions (step1000,step2000) or a pattern (\"step*000\")")
    if len(set(items)) != len(items):
        raise UsageError(f"--revisions {text!r}: a revision is listed twice")
    return items


def open_series(args: argparse.Namespace, *, positional: str | None) -> Any:
    """The checkpoint series a command runs on: the run/model directory ``positional``, or the hub
    series of ``--hub`` / ``--revisions`` (exactly one of them)."""
    from lensprobe.checkpoints import CheckpointError, CheckpointSeries

    hub = getattr(args, "hub", None)
    if hub and positional:
        raise UsageError(f"give a run directory ({positional}) or --hub {hub}, not both")
    if not hub:
        if getattr(args, "revisions", None):
            raise UsageError("--revisions needs --hub REPO")
        if not positional:
            raise UsageError("give a model or run directory, or --hub REPO [--revisions ...]")
        path = Path(positional).expanduser()
        if not path.exists():
            raise UsageError(f"model or run directory {path.absolute()} does not exist")
        try:
            return CheckpointSeries(path)
        except (CheckpointError, ValueError, FileNotFoundError) as exc:
            raise UsageError(f"{path.absolute()}: {exc}") from None
    revisions = _hub_revisions(args.revisions)
    if args.offline and not isinstance(revisions, list):
        raise UsageError("--offline needs --revisions as a list (step1000,step2000): finding revisions by pattern "
                         "lists the repository's branches, which needs the network")
    try:
        series = CheckpointSeries.from_hub(hub, revisions, cache_dir=args.hub_cache, local_files_only=args.offline)
    except (CheckpointError, ValueError) as exc:
        raise UsageError(f"--hub {hub}: {exc}") from None
    except Exception as exc:  # noqa: BLE001 - listing the branches: network, auth, unknown repository
        raise UsageError(f"--hub {hub}: cannot list the repository's revisions ({type(exc).__name__}: {exc}); "
                         "check the name and the network, or give --revisions as a list") from None
    if not len(series):
        reasons = "; ".join(c.reason or c.name for c in series.broken)
        raise UsageError(f"--hub {hub}: no revision could be used ({reasons})")
    return series
