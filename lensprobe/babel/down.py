"""The "down" table (docs/babel.md, "The paper's regime: is there a down?"): for continual runs at one
Python share, PHP on the ``python_only`` concepts against both baselines (``control``, the body
prior), Python's own accuracy on the same concepts, the working-language share, the stages found,
and whether a decline appears and which kind it is — *forgetting* (Python falls with PHP) or the
paper's *disconnect* (Python holds while PHP falls).

Per run (seed) the curves are smoothed with a centred sliding mean of width ``window`` (edges:
the points available, :func:`lensprobe.analysis.smoothing.sliding_mean`) before peaks and end values
are read, and intervals are Student-t half-widths over the seeds (few seeds: wide).
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Mapping

import numpy as np
import pandas as pd
from scipy import stats

from lensprobe.analysis.smoothing import sliding_mean
from lensprobe.babel.rows import summary_rows

__all__ = ["DownRow", "down_curves", "down_row", "half_width"]


def half_width(values, confidence: float = 0.95) -> float:
    """Student-t half-width of the mean of ``values`` (NaN with fewer than 2 finite values)."""
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    if v.size < 2:
        return math.nan
    return float(stats.t.ppf(0.5 + confidence / 2, v.size - 1) * v.std(ddof=1) / math.sqrt(v.size))


def down_curves(table: pd.DataFrame) -> pd.DataFrame:
    """One row per (run, step): PHP line accuracy on python_only / control, PHP python_only's body
    prior, Python's own python_only accuracy, and Eq.1's Python share on the python_only prompts the
    model generates (``lens_py``) with the prompts it counts (``n_lens``: top-1 in either identifier
    set at the intermediate layers; the share is NaN when none is)."""
    babel = summary_rows(table[table["probe"] == "babel"])
    b = babel[babel["metric"].isin(["line_acc", "line_acc_prior"])]
    key = b["language"].astype(str) + "_" + b["identifier"].astype(str) + np.where(
        b["metric"] == "line_acc_prior", "_prior", "")
    b = b.assign(key=key.to_numpy())
    wanted = ["php_python_only", "php_control", "php_python_only_prior", "python_python_only"]
    out = b[b["key"].isin(wanted)].pivot_table(index=["run", "step"], columns="key", values="value")
    missing = sorted(set(wanted) - set(out.columns))
    if missing:
        raise ValueError(f"the sweep table lacks Babel rows {missing} (sweep with the babel probe on python+php)")
    wl = table[(table["probe"] == "working_language") & table["layer"].isna()
               & (table["identifier"] == "python_only:*")]
    if len(wl):
        lens = wl[wl["metric"].isin(["eq1_python_share", "eq1_counted"])].pivot_table(
            index=["run", "step"], columns="metric", values="value", dropna=False)
        out = out.join(lens.rename(columns={"eq1_python_share": "lens_py", "eq1_counted": "n_lens"}))
    else:
        out["lens_py"], out["n_lens"] = np.nan, np.nan
    return out.reset_index()


@dataclass(frozen=True)
class DownRow:
    """The down table's row for one Python share (see the module docstring); ``*_hw`` are 95%
    Student-t half-widths over the seeds."""

    python_share: float
    n_seeds: int
    last_step: float
    php_po_peak: float
    php_po_peak_step: float
    php_po_last: float
    php_po_last_hw: float
    control_last: float
    prior_last: float
    po_minus_control_last: float
    po_minus_control_last_hw: float
    po_minus_prior_last: float
    po_minus_prior_last_hw: float
    python_po_first: float
    python_po_min: float
    python_po_min_step: float
    python_po_last: float
    python_po_last_hw: float
    lens_py_first: float
    lens_py_last: float
    n_lens_first: float
    n_lens_last: float
    stages: str
    transition: bool
    php_drop: float
    php_drop_hw: float
    python_change: float
    python_change_hw: float
    verdict: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _smoothed(curves: pd.DataFrame, column: str, window: int) -> pd.DataFrame:
    """run x step table of ``column`` smoothed along the steps per run."""
    wide = curves.pivot_table(index="step", columns="run", values=column).sort_index()
    return pd.DataFrame(sliding_mean(wide.to_numpy(float).T, window=window).T, index=wide.index, columns=wide.columns)


def down_row(table: pd.DataFrame, *, stages: Mapping[str, Any] | None, python_share: float,
             window: int = 3) -> DownRow:
    """The down table's row for the runs of one sweep table (one run per seed, same steps).

    Decline: the stage detector's ``transition`` stage on the seed-mean curve (``stages``, the
    ``php`` entry of ``stages.json``). The drop is PHP's smoothed python_only accuracy at the peak of
    the seed-mean curve minus at the end, per seed; Python's change is its own python_only accuracy
    over the same steps. A decline is *forgetting* when Python falls too (its change's interval
    below 0), else *disconnect* (Python holds while PHP falls)."""
    if window < 1:
        raise ValueError(f"window must be >= 1, got {window}")
    c = down_curves(table)
    php = _smoothed(c, "php_python_only", window)
    py = _smoothed(c, "python_python_only", window)
    steps = php.index.to_numpy(float)
    mean_curve = php.mean(axis=1).to_numpy(float)
    peak = int(np.argmax(mean_curve))
    last = len(steps) - 1
    raw = {col: c.pivot_table(index="step", columns="run", values=col, dropna=False).reindex(
               index=php.index, columns=php.columns)
           for col in ("php_python_only", "php_control", "php_python_only_prior", "python_python_only", "lens_py",
                       "n_lens")}
    at_last = {k: v.iloc[last] for k, v in raw.items()}
    drop = php.iloc[peak] - php.iloc[last]
    change = py.iloc[last] - py.iloc[peak]
    py_mean = raw["python_python_only"].mean(axis=1)
    st = stages or {}
    found = st.get("stages") or []
    conf = st.get("confidence") or {}
    stage_text = ", ".join(f"{s['name']} {s['start_step']:g}-{s['end_step']:g} ({conf.get(s['name'], math.nan):.2f})"
                           for s in found) or "none"
    transition = any(s["name"] == "transition" for s in found)
    change_hw = half_width(change)
    if transition:
        falls = math.isfinite(change_hw) and change.mean() + change_hw < 0
        verdict = ("decline: forgetting (Python falls with PHP)" if falls
                   else "decline: disconnect (Python holds while PHP falls)")
    else:
        verdict = "no decline"
        if py_mean.iloc[0] - py_mean.iloc[last] > 0.5:
            verdict += f"; Python forgotten ({py_mean.iloc[0]:.2f} -> {py_mean.iloc[last]:.2f}) while PHP keeps its level"
    return DownRow(
        python_share=float(python_share), n_seeds=int(php.shape[1]), last_step=float(steps[last]),
        php_po_peak=float(mean_curve[peak]), php_po_peak_step=float(steps[peak]),
        php_po_last=float(at_last["php_python_only"].mean()), php_po_last_hw=half_width(at_last["php_python_only"]),
        control_last=float(at_last["php_control"].mean()), prior_last=float(at_last["php_python_only_prior"].mean()),
        po_minus_control_last=float((at_last["php_python_only"] - at_last["php_control"]).mean()),
        po_minus_control_last_hw=half_width(at_last["php_python_only"] - at_last["php_control"]),
        po_minus_prior_last=float((at_last["php_python_only"] - at_last["php_python_only_prior"]).mean()),
        po_minus_prior_last_hw=half_width(at_last["php_python_only"] - at_last["php_python_only_prior"]),
        python_po_first=float(py_mean.iloc[0]), python_po_min=float(py_mean.min()),
        python_po_min_step=float(py_mean.idxmin()), python_po_last=float(py_mean.iloc[last]),
        python_po_last_hw=half_width(at_last["python_python_only"]),
        lens_py_first=float(raw["lens_py"].iloc[0].mean()), lens_py_last=float(at_last["lens_py"].mean()),
        n_lens_first=float(raw["n_lens"].iloc[0].sum()), n_lens_last=float(at_last["n_lens"].sum()),
        stages=stage_text, transition=transition, php_drop=float(drop.mean()), php_drop_hw=half_width(drop),
        python_change=float(change.mean()), python_change_hw=change_hw, verdict=verdict)
