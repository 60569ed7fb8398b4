"""One progress style for long work: tqdm bars and short messages, both on stderr (docs/engine.md,
"Progress and --quiet").

Training (steps: loss, tokens/s, ETA), evaluation (programs), sweeps (checkpoints) and the demo's
phases all draw their bars with :func:`progress_bar` and print their messages with :func:`say`, so
messages never break a bar and stdout keeps only results. ``enabled=False`` (the CLI's ``--quiet``)
turns both off; errors are printed by the caller regardless.
"""
from __future__ import annotations

import sys
from typing import Any, Iterable

from tqdm.auto import tqdm

__all__ = ["progress_bar", "say"]


def progress_bar(iterable: Iterable[Any] | None = None, *, total: int | None = None, desc: str, unit: str = "it",
                 initial: int = 0, enabled: bool = True, leave: bool = True) -> Any:
    """A tqdm bar on stderr (a widget in notebooks); a silent no-op bar when ``enabled`` is False.

    ``set_postfix_str`` / ``update`` / ``close`` work either way, so callers need no branches.
    """
    if not isinstance(enabled, bool):
        raise ValueError(f"enabled must be a bool, got {enabled!r}")
    return tqdm(iterable, total=total, desc=desc, unit=unit, initial=initial, disable=not enabled,
                dynamic_ncols=True, file=sys.stderr, leave=leave)


def say(message: str) -> None:
    """Print one progress message to stderr without breaking an active bar."""
    tqdm.write(str(message), file=sys.stderr)
