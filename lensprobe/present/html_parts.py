"""The report's building blocks (a section other modules add, number formatting, HTML tables), shared by
:mod:`lensprobe.present.report` and the modules that contribute sections (the tuned lens, the closed loop)."""
from __future__ import annotations

import html
import math
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

__all__ = ["ReportSection", "fmt_number", "fmt_interval"]


@dataclass(frozen=True)
class ReportSection:
    """A section another part of lensprobe adds to the report (placed after the tables).

    ``html`` is the section's body (trusted HTML: build it with :func:`html.escape` for text);
    ``finding``, when given, is one sentence (plain text) listed in the summary under ``title``."""

    id: str
    title: str
    html: str
    finding: str | None = None

    def __post_init__(self) -> None:
        if not self.id or not self.id.replace("-", "").replace("_", "").isalnum():
            raise ValueError(f"ReportSection id must be alphanumeric (with - or _), got {self.id!r}")


# --------------------------------------------------------------------------- number formatting
def fmt_number(v: Any, *, digits: int = 2) -> str:
    """``—`` for missing, ``∞`` for infinity; integers, values >= 1000 and ``digits=0`` rounded with
    thousands separators (``100,538,065``), others with ``digits`` decimals (``0.26``)."""
    if v is None or (isinstance(v, float) and math.isnan(v)) or v is pd.NA:
        return "—"
    try:
        f = float(v)
    except (TypeError, ValueError):
        return str(v)
    if math.isnan(f):
        return "—"
    if math.isinf(f):
        return "∞" if f > 0 else "−∞"
    if abs(f) >= 1000 or digits == 0 or isinstance(v, (int, np.integer)):
        return f"{round(f):,}"
    return f"{f:.{digits}f}"


def fmt_interval(value: Any, lo: Any, hi: Any, *, digits: int = 2, label: str = "95% CI") -> str:
    """``0.26 (95% CI 0.17–0.38)``; the value alone when the interval is missing."""
    text = fmt_number(value, digits=digits)
    if lo is None or hi is None or any(isinstance(x, float) and math.isnan(x) for x in (lo, hi)):
        return text
    return f"{text} ({label} {fmt_number(lo, digits=digits)}–{fmt_number(hi, digits=digits)})"


def _signed(v: float) -> str:
    return ("+" if v >= 0 else "−") + f"{abs(v):.2f}"


def _esc(text: Any) -> str:
    return html.escape(str(text))


def _table(rows: Sequence[Mapping[str, Any]], *, numeric: Sequence[str] = ()) -> str:
    if not rows:
        return "<p class='muted'>No rows.</p>"
    cols = list(dict.fromkeys(c for r in rows for c in r))
    head = "".join(f"<th>{_esc(c)}</th>" for c in cols)
    body = []
    for r in rows:
        cells = "".join(f"<td class='num'>{_esc(r.get(c, '—'))}</td>" if c in numeric
                        else f"<td>{_esc(r.get(c, '—'))}</td>" for c in cols)
        body.append(f"<tr>{cells}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"
