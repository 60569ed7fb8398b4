"""Curves of a sweep table with their intervals: what the figures draw and the report states.

Each function takes the long table (:data:`lensprobe.table.SWEEP_COLUMNS`) and returns a tidy frame,
one row per point, with the interval it is drawn with (docs/sweep.md, "Figures"):

* :func:`performance_curves` — a probe's metric per language x identifier (Babel split) over steps;
  95% interval across runs (Student-t, runs - 1 degrees of freedom) when several runs (seeds) hold the
  point, else the probe's own ``<metric>_lo`` / ``<metric>_hi`` rows; the body prior
  ``<metric>_prior`` beside it;
* :func:`share_curve` — a working-language share (Eq.1) over steps with ``n`` (prompts behind the
  point) and a 95% Wilson interval on those prompts;
* :func:`layer_curves` — per-layer shares (``share_python_top1`` ...) at each checkpoint, same interval;
* :func:`lape_curves` — LAPE counts per language with the shuffled-label null (mean, and the band of
  the permutations when the table has ``null_<metric>_lo`` / ``_hi`` rows) and where each count lies
  against it;
* :func:`transfer` — the target's accuracy on Python-only concepts against the control split and the
  body prior at one checkpoint, with bootstrap intervals of both differences (docs/babel.md).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Sequence

import numpy as np
import pandas as pd

from lensprobe.babel.rows import item_rows, summary_rows

__all__ = ["Z95", "wilson_interval", "x_column", "performance_curves", "share_curve", "layer_curves",
           "lape_curves", "Transfer", "transfer", "python_language"]

#: the two-sided 95% normal quantile
Z95 = 1.959963984540054


def wilson_interval(share: Any, n: Any, *, z: float = Z95) -> tuple[np.ndarray, np.ndarray]:
    """Wilson score interval of a proportion ``share`` observed on ``n`` units (NaN where ``n <= 0``
    or the share is NaN)."""
    p = np.asarray(share, dtype=float)
    m = np.asarray(n, dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        denom = 1 + z * z / m
        centre = (p + z * z / (2 * m)) / denom
        half = z * np.sqrt(np.clip(p * (1 - p), 0, None) / m + z * z / (4 * m * m)) / denom
        bad = ~(m > 0) | np.isnan(p)
        lo = np.where(bad, np.nan, np.clip(centre - half, 0, 1))
        hi = np.where(bad, np.nan, np.clip(centre + half, 0, 1))
    return lo, hi


def x_column(table: pd.DataFrame, x: str = "step") -> str:
    """The column a figure's x axis reads: ``x`` (``"step"`` or ``"tokens"``) when it has values, else
    ``"step"``, else ``"checkpoint"``."""
    if x not in ("step", "tokens"):
        raise ValueError(f"x must be 'step' or 'tokens', got {x!r}")
    for col in (x, "step", "checkpoint"):
        if col in table.columns and table[col].notna().any():
            return col
    raise ValueError(f"the table has no usable {x!r}, 'step' or 'checkpoint' column")


def _frame(table: pd.DataFrame) -> pd.DataFrame:
    if not isinstance(table, pd.DataFrame):
        raise TypeError(f"expected a sweep table (DataFrame), got {type(table).__name__}")
    missing = {"metric", "value", "language"} - set(table.columns)
    if missing:
        raise ValueError(f"the table lacks column(s) {sorted(missing)}")
    out = table
    for col, fill in (("run", ""), ("identifier", None), ("layer", None), ("n", None), ("probe", None),
                      ("tokens", None)):
        if col not in out.columns:
            out = out.assign(**{col: fill})
    return out.assign(run=out["run"].astype("object").where(out["run"].notna(), ""))


def _metrics_present(table: pd.DataFrame) -> str:
    return ", ".join(sorted(map(str, table["metric"].dropna().unique()))[:30])


def python_language(languages: Sequence[str]) -> str | None:
    """The reference language among ``languages`` (``"python"`` when present)."""
    return "python" if "python" in set(languages) else None


def performance_curves(table: pd.DataFrame, *, metric: str = "line_acc", probe: str | None = "babel",
                       languages: Sequence[str] | None = None, x: str = "step") -> pd.DataFrame:
    """``metric`` per (language, identifier, step): columns ``language, identifier, step, x, value,
    lo, hi, interval, runs, n, prior, prior_lo, prior_hi`` (``identifier`` ``"all"`` for rows without
    one; ``interval``: ``"seeds"`` or ``"bootstrap"`` or ``"none"``). The Babel probe's per-item rows
    are left out."""
    from scipy import stats

    df = _frame(summary_rows(table))
    if probe is not None:
        df = df[df["probe"] == probe]
    if languages is not None:
        df = df[df["language"].isin(list(languages))]
    main = df[df["metric"] == metric]
    if main.empty:
        raise ValueError(f"no rows with metric {metric!r}" + (f" of probe {probe!r}" if probe else "")
                         + (f" for language(s) {', '.join(languages)}" if languages is not None else "")
                         + f" in the sweep table (metrics present: {_metrics_present(table)})")
    xcol = x_column(main, x)
    ident = df["identifier"].astype("object").where(df["identifier"].notna(), "all")
    df = df.assign(identifier=ident)
    keys = ["language", "identifier", "step"] if "step" in df.columns else ["language", "identifier", xcol]

    def per_key(metric_name: str) -> pd.DataFrame:
        sub = df[df["metric"] == metric_name]
        if sub.empty:
            return pd.DataFrame(columns=keys)
        per_run = sub.groupby(keys + ["run"], dropna=False).agg(
            value=("value", "mean"), n=("n", lambda s: pd.to_numeric(s, errors="coerce").sum()),
            x=(xcol, "first")).reset_index()
        return per_run

    per_run = per_key(metric)
    out = per_run.groupby(keys, dropna=False).agg(
        value=("value", "mean"), sd=("value", "std"), runs=("value", "count"), n=("n", "sum"),
        x=("x", "mean" if xcol != "checkpoint" else "first")).reset_index()
    half = np.full(len(out), np.nan)
    several = out["runs"].to_numpy() > 1
    if several.any():
        k = out["runs"].to_numpy(float)
        with np.errstate(invalid="ignore"):
            half = np.where(several, stats.t.ppf(0.975, np.maximum(k - 1, 1)) * out["sd"].to_numpy(float)
                            / np.sqrt(k), np.nan)
    out["lo"], out["hi"] = out["value"] - half, out["value"] + half
    out["interval"] = np.where(several, "seeds", "none")
    for suffix in ("_lo", "_hi"):
        b = per_key(metric + suffix)
        if not b.empty:
            b = b.groupby(keys, dropna=False)["value"].mean().rename("b" + suffix)
            out = out.join(b, on=keys)
        else:
            out["b" + suffix] = np.nan
    boot = ~several & out["b_lo"].notna() & out["b_hi"].notna()
    out.loc[boot, "lo"], out.loc[boot, "hi"] = out.loc[boot, "b_lo"], out.loc[boot, "b_hi"]
    out.loc[boot, "interval"] = "bootstrap"
    for name, suffix in (("prior", "_prior"), ("prior_lo", "_prior_lo"), ("prior_hi", "_prior_hi")):
        p = per_key(metric + suffix)
        if p.empty:
            out[name] = np.nan
        else:
            out = out.join(p.groupby(keys, dropna=False)["value"].mean().rename(name), on=keys)
    if "step" not in out.columns:
        out["step"] = np.nan
    cols = ["language", "identifier", "step", "x", "value", "lo", "hi", "interval", "runs", "n", "prior",
            "prior_lo", "prior_hi"]
    return out[cols].sort_values(["language", "identifier", "step"]).reset_index(drop=True)


def share_curve(table: pd.DataFrame, *, metric: str = "eq1_python_share", probe: str | None = "working_language",
                by_identifier: bool = False, languages: Sequence[str] | None = None, x: str = "step") -> pd.DataFrame:
    """A working-language share over steps: columns ``key, step, x, value, n, kept, lo, hi, runs``.

    ``key`` is the language (suite-level rows: ``identifier`` empty, Eq.1 over every identifier's
    prompts) or, with ``by_identifier``, the identifier (and Babel suites' pooled ``<split>:*`` rows).
    ``value`` is the mean over the runs with a finite share, ``n`` the prompts behind them (summed);
    the interval is Wilson's on those ``n`` prompts — the prompt, not the (prompt, layer) cell, is the
    unit, since one prompt's layers are not independent. ``kept`` counts the prompts of every row,
    NaN shares included: a share is NaN when no prompt is kept, or when no kept prompt's lens ranks
    either identifier first at any counted layer (docs/suites.md)."""
    df = _frame(table)
    sel = df[df["metric"] == metric]
    if probe is not None:
        sel = sel[sel["probe"] == probe]
    if languages is not None:
        sel = sel[sel["language"].isin(list(languages))]
    if sel.empty:
        raise ValueError(f"no rows with metric {metric!r}" + (f" of probe {probe!r}" if probe else "")
                         + f" in the sweep table (metrics present: {_metrics_present(table)})")
    sel = sel[sel["layer"].isna()] if sel["layer"].isna().any() else sel
    pooled = sel["identifier"].isna()
    if by_identifier:
        sel = sel[~pooled] if (~pooled).any() else sel
    elif pooled.any():
        sel = sel[pooled]
    key = "identifier" if by_identifier else "language"
    xcol = x_column(sel, x)
    n = pd.to_numeric(sel["n"], errors="coerce").astype(float).fillna(0.0)
    sel = sel.assign(key=sel[key].astype("object"), n=np.where(sel["value"].notna(), n, 0.0), kept=n,
                     x=sel[xcol], finite=sel["value"].notna())
    group = ["key", "step"] if "step" in sel.columns else ["key", "x"]
    out = sel.groupby(group, dropna=False).agg(value=("value", "mean"), n=("n", "sum"), kept=("kept", "sum"),
                                               runs=("finite", "sum"),
                                               x=("x", "mean" if xcol != "checkpoint" else "first")).reset_index()
    if "step" not in out.columns:
        out["step"] = np.nan
    out["lo"], out["hi"] = wilson_interval(out["value"], out["n"])
    cols = ["key", "step", "x", "value", "n", "kept", "lo", "hi", "runs"]
    return out[cols].sort_values(["key", "step"]).reset_index(drop=True)


def layer_curves(table: pd.DataFrame, *, metrics: Sequence[str] = ("share_python_top1", "share_target_top1"),
                 probe: str | None = "working_language", language: str | None = None) -> pd.DataFrame:
    """Per-layer values (suite-level rows) at each checkpoint: columns ``language, metric, step, x
    (tokens), layer, value, n, lo, hi``; Wilson intervals on ``n`` prompts for ``share_*`` metrics
    (the share of prompts whose lens top-1 falls in a set), none for log-probabilities."""
    df = _frame(table)
    sel = df[df["metric"].isin(list(metrics)) & df["layer"].notna()]
    if probe is not None:
        sel = sel[sel["probe"] == probe]
    if language is not None:
        sel = sel[sel["language"] == language]
    if sel.empty:
        raise ValueError(f"no per-layer rows with metric(s) {', '.join(metrics)}"
                         + (f" for language {language!r}" if language else "")
                         + f" in the sweep table (metrics present: {_metrics_present(table)})")
    if sel["identifier"].isna().any():
        sel = sel[sel["identifier"].isna()]
    n = pd.to_numeric(sel["n"], errors="coerce").astype(float)
    sel = sel.assign(n=np.where(sel["value"].notna(), n.fillna(0.0), 0.0),
                     tokens=pd.to_numeric(sel["tokens"], errors="coerce"))
    out = sel.groupby(["language", "metric", "step", "layer"], dropna=False).agg(
        value=("value", "mean"), n=("n", "sum"), x=("tokens", "mean")).reset_index()
    out["layer"] = out["layer"].astype(int)
    lo, hi = wilson_interval(out["value"], out["n"])
    share = out["metric"].str.startswith("share_").to_numpy()
    out["lo"], out["hi"] = np.where(share, lo, np.nan), np.where(share, hi, np.nan)
    return out.sort_values(["language", "metric", "step", "layer"]).reset_index(drop=True)


def lape_curves(table: pd.DataFrame, *, metric: str = "n_neurons", languages: Sequence[str] | None = None,
                x: str = "step") -> pd.DataFrame:
    """Whole-model LAPE counts per language with the shuffled-label null: columns ``language, x,
    value, null, null_lo, null_hi, band, position`` (one row per checkpoint; ``x`` the chosen x column).

    ``null`` is the mean count over permutations; ``null_lo`` / ``null_hi`` their range (rows
    ``null_<metric>_lo`` / ``_hi``; NaN in tables written before those rows existed, ``band`` False).
    ``position`` is ``"below"``, ``"inside"`` or ``"above"`` the band, or with no band ``"below"`` /
    ``"above"`` / ``"equal"`` the null mean; NaN without a null."""
    df = _frame(table)
    if "probe" in df.columns and df["probe"].notna().any():
        df = df[df["probe"] == "lape"]
    if df.empty:
        raise ValueError("the table has no LAPE rows (probe == 'lape')")
    whole = df[df["layer"].isna() & df["language"].notna()]
    if languages is not None:
        whole = whole[whole["language"].isin(list(languages))]
    if whole[whole["metric"] == metric].empty:
        raise ValueError(f"no whole-model LAPE rows with metric {metric!r}")
    xcol = x_column(whole, x)

    def mean(name: str) -> pd.Series:
        sub = whole[whole["metric"] == name]
        return sub.groupby(["language", xcol])["value"].mean().rename(name)

    out = mean(metric).to_frame("value")
    for name, col in ((f"null_{metric}", "null"), (f"null_{metric}_lo", "null_lo"), (f"null_{metric}_hi", "null_hi")):
        out = out.join(mean(name).rename(col), how="left")
    out = out.reset_index().rename(columns={xcol: "x"})
    out["band"] = out["null_lo"].notna() & out["null_hi"].notna()
    v = out["value"]
    pos = np.where(out["band"], np.where(v < out["null_lo"], "below", np.where(v > out["null_hi"], "above", "inside")),
                   np.where(v < out["null"], "below", np.where(v > out["null"], "above", "equal")))
    out["position"] = np.where(out["null"].isna() & ~out["band"], None, pos)
    return out[["language", "x", "value", "null", "null_lo", "null_hi", "band", "position"]]


@dataclass(frozen=True)
class Transfer:
    """The target's accuracy on one split against the control split and the body prior at one step.

    ``*_lo`` / ``*_hi`` are 95% intervals (of the probe, or across seeds); ``diff_control`` and
    ``diff_prior`` are bootstrap 95% intervals of the differences over the per-item rows (unpaired
    against control, paired against the prior); without item rows they are None and the verdict
    compares the intervals. ``claimed`` follows docs/babel.md: above both, by more than the intervals.
    """

    language: str
    metric: str
    split: str
    step: float
    value: float
    lo: float
    hi: float
    control: float
    control_lo: float
    control_hi: float
    prior: float
    prior_lo: float
    prior_hi: float
    python: float
    diff_control: tuple[float, float, float] | None
    diff_prior: tuple[float, float, float] | None
    items: int
    claimed: bool
    reason: str

    def to_dataframe(self) -> pd.DataFrame:
        return pd.DataFrame([asdict(self)])


def _boot_diff(a: np.ndarray, b: np.ndarray, *, paired: bool, n_boot: int, seed: int) -> tuple[float, float, float]:
    rng = np.random.default_rng(seed)
    if paired:
        d = a - b
        idx = rng.integers(0, len(d), size=(n_boot, len(d)))
        reps = d[idx].mean(axis=1)
        est = float(d.mean())
    else:
        reps = (a[rng.integers(0, len(a), size=(n_boot, len(a)))].mean(axis=1)
                - b[rng.integers(0, len(b), size=(n_boot, len(b)))].mean(axis=1))
        est = float(a.mean() - b.mean())
    lo, hi = np.percentile(reps, [2.5, 97.5])
    return est, float(lo), float(hi)


def transfer(table: pd.DataFrame, *, language: str, metric: str = "line_acc", probe: str = "babel",
             split: str = "python_only", control: str = "control", step: float | None = None,
             n_boot: int = 2000, seed: int = 0) -> Transfer:
    """``language``'s ``metric`` on ``split`` against ``control`` and the body prior at ``step``
    (default: the last step with rows), from the summary rows and, for the differences, the per-item
    rows (docs/babel.md, "How to read the numbers")."""
    curves = performance_curves(table, metric=metric, probe=probe, languages=None)
    mine = curves[(curves["language"] == language)]
    if mine.empty:
        raise ValueError(f"no {metric!r} rows for language {language!r}; languages: "
                         f"{', '.join(sorted(map(str, curves['language'].unique())))}")
    if step is None:
        step = float(mine["step"].max())
    at = mine[mine["step"] == step].set_index("identifier")
    if split not in at.index or control not in at.index:
        raise ValueError(f"no {metric!r} rows of split {split!r} and {control!r} for {language!r} at step {step:g}")
    s, c = at.loc[split], at.loc[control]
    py = curves[(curves["language"] == "python") & (curves["identifier"] == split) & (curves["step"] == step)]
    items = item_rows(_frame(table)[lambda d: (d["probe"] == probe) & (d["language"] == language)
                                    & (d["step"] == step)])
    diff_control = diff_prior = None
    n_items = 0
    if not items.empty:
        own = items[(items["split"] == split) & (items["metric"] == metric)]
        ctl = items[(items["split"] == control) & (items["metric"] == metric)]
        if len(own) and len(ctl):
            n_items = len(own)
            diff_control = _boot_diff(own["value"].to_numpy(float), ctl["value"].to_numpy(float), paired=False,
                                      n_boot=n_boot, seed=seed)
            pri = items[(items["split"] == split) & (items["metric"] == f"{metric}_prior")]
            pair = own.merge(pri, on=["run", "concept"], suffixes=("", "_prior")).dropna(subset=["value", "value_prior"])
            if len(pair):
                diff_prior = _boot_diff(pair["value"].to_numpy(float), pair["value_prior"].to_numpy(float),
                                        paired=True, n_boot=n_boot, seed=seed + 1)
    if diff_control is not None:
        above_control = diff_control[1] > 0
        above_prior = diff_prior is not None and diff_prior[1] > 0
        how = "the 95% bootstrap intervals of the differences over items"
    else:
        above_control = bool(s["lo"] > c["hi"]) if np.isfinite(s["lo"]) and np.isfinite(c["hi"]) else False
        above_prior = bool(s["lo"] > s["prior_hi"]) if np.isfinite(s["lo"]) and np.isfinite(s["prior_hi"]) else False
        how = "non-overlapping intervals (no per-item rows)"
    claimed = bool(above_control and above_prior)
    if claimed:
        reason = f"above control and above the body prior ({how})"
    else:
        missing = [w for w, ok in (("control", above_control), ("the body prior", above_prior)) if not ok]
        reason = f"not above {' nor '.join(missing)} ({how})"
    return Transfer(language=language, metric=metric, split=split, step=float(step), value=float(s["value"]),
                    lo=float(s["lo"]), hi=float(s["hi"]), control=float(c["value"]), control_lo=float(c["lo"]),
                    control_hi=float(c["hi"]), prior=float(s["prior"]), prior_lo=float(s["prior_lo"]),
                    prior_hi=float(s["prior_hi"]), python=float(py["value"].iloc[0]) if len(py) else float("nan"),
                    diff_control=diff_control, diff_prior=diff_prior, items=n_items, claimed=claimed, reason=reason)
