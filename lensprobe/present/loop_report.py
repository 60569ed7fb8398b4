"""The closed loop as a report section (docs/fit.md, "The closed loop"; docs/sweep.md, "Report").

:func:`read_loop` reads a loop directory (``benchmarks/closed_loop.py --out DIR``):
``predicted_vs_actual.csv`` (required; one row per mixture run) and ``loop.json`` (the
recommendation, the points, the interval level; optional) and recomputes the statistics from the
CSV's rows; :func:`loop_section` turns them into a :class:`~lensprobe.present.report.ReportSection`:
the figure (``figures/loop.png``, inlined), Spearman, the mean absolute error, the recommended mix
against the natural one with intervals over seeds, the table, and a plain sentence for every point
whose measured value lies outside its predicted interval and for a recommendation that could not be
trained at the loop's scale.

    lensprobe report runs/loop/continual --loop runs/loop
"""
from __future__ import annotations

import base64
import itertools
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from lensprobe.analysis.fit.loop import loop_statistics
from lensprobe.present.html_parts import ReportSection, _esc, _table, fmt_interval, fmt_number

__all__ = ["LoopReport", "read_loop", "loop_section", "LOOP_TABLE", "REQUIRED_COLUMNS"]

LOOP_TABLE = "predicted_vs_actual.csv"
#: the columns of ``predicted_vs_actual.csv`` the section reads (a subset of ``loop.TABLE_COLUMNS``)
REQUIRED_COLUMNS = ("point", "seed", "share", "tokens", "predicted", "predicted_lo", "predicted_hi", "actual",
                    "actual_lo", "actual_hi", "feasible")
#: what the loop measures (lensprobe.closed_loop: line accuracy on these splits, last checkpoint)
METRIC_TEXT = "PHP line accuracy on python_only + shared items at the run's last checkpoint"
#: the interval level when loop.json does not say (the benchmark's default)
DEFAULT_CONFIDENCE = 0.9


def _signed(v: float, digits: int = 2) -> str:
    return "—" if v is None or not math.isfinite(v) else ("+" if v >= 0 else "−") + f"{abs(v):.{digits}f}"


def _permutation_p(x: np.ndarray, y: np.ndarray, rho: float) -> float:
    """Two-sided exact permutation p-value of Spearman's rho (every ordering of ``y``; n <= 8)."""
    rx, ry = stats.rankdata(x), stats.rankdata(y)
    rhos = np.array([stats.pearsonr(rx, ry[list(perm)])[0] for perm in itertools.permutations(range(len(ry)))])
    return float(np.mean(np.abs(rhos) >= abs(rho) - 1e-12))


def _bool(col: pd.Series, path: Path, name: str) -> pd.Series:
    if col.dtype == bool:
        return col
    text = col.astype(str).str.strip().str.lower()
    bad = sorted(set(text) - {"true", "false", "1", "0", "1.0", "0.0"})
    if bad:
        raise ValueError(f"{path}: column {name!r} must hold True/False, got {bad[:3]}")
    return text.isin({"true", "1", "1.0"})


@dataclass(frozen=True)
class LoopReport:
    """A loop directory's numbers as the report shows them (means over seeds per point).

    ``per_point``: ``point, share, tokens, predicted, predicted_lo, predicted_hi, actual, actual_lo,
    actual_hi, n_seeds, inside, feasible, asked_share``, the actual's interval over seeds (Student t at
    ``confidence``) with 2+ seeds, else the run's own item interval (``actual_interval`` says which).
    ``rec_minus_nat``: actual(recommended) − actual(natural) with its interval (paired over seeds; with
    one seed the item bootstrap that ``loop.json`` recorded, when it holds the same difference)."""

    loop_dir: Path
    table: pd.DataFrame
    per_point: pd.DataFrame
    confidence: float
    n_seeds: int
    spearman: float
    spearman_p: float          # exact permutation p with <= 8 points, else scipy's t approximation
    mae: float
    covered: int
    rec_minus_nat: float
    rec_minus_nat_lo: float
    rec_minus_nat_hi: float
    rec_minus_nat_method: str
    actual_interval: str
    wrong: tuple[str, ...]
    summary: dict = field(default_factory=dict, repr=False)

    @property
    def n_points(self) -> int:
        return len(self.per_point)

    @property
    def figure(self) -> Path:
        return self.loop_dir / "figures" / "loop.png"

    def to_dataframe(self) -> pd.DataFrame:
        return self.per_point.copy()


def _read_table(path: Path) -> pd.DataFrame:
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file; a loop directory holds {LOOP_TABLE} "
                                "(benchmarks/closed_loop.py --out DIR writes it)")
    try:
        table = pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path}: not a CSV table ({str(exc).splitlines()[0]})") from None
    missing = [c for c in REQUIRED_COLUMNS if c not in table.columns]
    if missing:
        raise ValueError(f"{path}: missing column(s) {', '.join(missing)} (see lensprobe.analysis.fit.loop.TABLE_COLUMNS)")
    if table.empty:
        raise ValueError(f"{path}: no rows (no mixture run was evaluated)")
    for c in REQUIRED_COLUMNS:
        if c in ("point", "feasible"):
            continue
        values = pd.to_numeric(table[c], errors="coerce")
        if values.isna().any() or not np.isfinite(values.to_numpy(float)).all():
            row = int(np.flatnonzero(values.isna().to_numpy() | ~np.isfinite(values.to_numpy(float)))[0])
            raise ValueError(f"{path}: column {c!r} must hold finite numbers, row {row + 2} has {table[c].iloc[row]!r}")
        table[c] = values
    table["point"] = table["point"].astype(str)
    table["seed"] = table["seed"].astype(int)
    table["feasible"] = _bool(table["feasible"], path, "feasible")
    if table.duplicated(["point", "seed"]).any():
        dup = table[table.duplicated(["point", "seed"])].iloc[0]
        raise ValueError(f"{path}: point {dup['point']!r} appears twice for seed {dup['seed']}")
    return table


def read_loop(loop_dir: str | Path) -> LoopReport:
    """Read ``loop_dir/predicted_vs_actual.csv`` (+ ``loop.json`` when present) and recompute the
    loop's statistics from the CSV. Raises ``FileNotFoundError`` / ``ValueError`` naming the file."""
    loop_dir = Path(loop_dir)
    if not loop_dir.is_dir():
        raise FileNotFoundError(f"loop directory {loop_dir} does not exist")
    table = _read_table(loop_dir / LOOP_TABLE)
    summary: dict = {}
    js = loop_dir / "loop.json"
    if js.is_file():
        try:
            summary = json.loads(js.read_text())
        except json.JSONDecodeError as exc:
            raise ValueError(f"{js}: not JSON ({exc})") from None
        if not isinstance(summary, dict):
            raise ValueError(f"{js}: expected a JSON object, got {type(summary).__name__}")
    conf = (summary.get("prediction") or {}).get("confidence") or DEFAULT_CONFIDENCE
    if not 0 < float(conf) < 1:
        raise ValueError(f"{js}: prediction.confidence must lie in (0, 1), got {conf!r}")
    conf = float(conf)

    st = loop_statistics(table, confidence=conf)
    p_value = st.spearman_p
    if math.isfinite(st.spearman) and st.n_points <= 8:
        p_value = _permutation_p(st.per_point["predicted"].to_numpy(float), st.per_point["actual"].to_numpy(float),
                                 st.spearman)
    per = st.per_point.rename(columns={"in_predicted_interval": "inside"}).drop(columns=["error"])
    if "asked_share" in table.columns:
        per["asked_share"] = per["point"].map(table.groupby("point")["asked_share"].first())
    else:
        per["asked_share"] = np.nan
    n_seeds = int(table["seed"].nunique())
    lo, hi = [], []
    for p in per["point"]:
        g = table[table["point"] == p]
        if len(g) >= 2:
            v = g["actual"].to_numpy(float)
            half = float(stats.t.ppf(0.5 + conf / 2, len(v) - 1) * v.std(ddof=1) / math.sqrt(len(v)))
            lo.append(v.mean() - half)
            hi.append(v.mean() + half)
        else:
            lo.append(float(g["actual_lo"].iloc[0]))
            hi.append(float(g["actual_hi"].iloc[0]))
    per["actual_lo"], per["actual_hi"] = lo, hi
    per = per[["point", "share", "tokens", "predicted", "predicted_lo", "predicted_hi", "actual", "actual_lo",
               "actual_hi", "n_seeds", "inside", "feasible", "asked_share"]]
    interval = (f"Student t over {n_seeds} seeds" if per["n_seeds"].min() >= 2 else
                "the run's items (bootstrap), one seed" if n_seeds == 1 else "over seeds where a point has 2+")

    diff, dlo, dhi, method = st.rec_minus_nat, st.rec_minus_nat_lo, st.rec_minus_nat_hi, st.rec_minus_nat_method
    recorded = summary.get("statistics") or {}
    if (math.isfinite(diff) and not math.isfinite(dlo) and recorded.get("rec_minus_nat") is not None
            and recorded.get("rec_minus_nat_lo") is not None and math.isclose(recorded["rec_minus_nat"], diff, abs_tol=1e-9)):
        dlo, dhi = float(recorded["rec_minus_nat_lo"]), float(recorded["rec_minus_nat_hi"])
        method = str(recorded.get("rec_minus_nat_method", "loop.json"))
    return LoopReport(loop_dir=loop_dir, table=table, per_point=per, confidence=conf, n_seeds=n_seeds,
                      spearman=st.spearman, spearman_p=p_value, mae=st.mae, covered=st.covered,
                      rec_minus_nat=diff, rec_minus_nat_lo=dlo, rec_minus_nat_hi=dhi, rec_minus_nat_method=method,
                      actual_interval=interval, wrong=tuple(_wrong(per, summary, conf)), summary=summary)


def _wrong(per: pd.DataFrame, summary: dict, conf: float) -> list[str]:
    """One plain sentence per point whose measured mean lies outside its predicted interval, and one
    for a recommendation trained somewhere else than Algorithm 1 asked."""
    out = []
    label = f"{conf:.0%} CI"
    for r in per.itertuples(index=False):
        if r.inside:
            continue
        above = r.actual > r.predicted_hi
        gap = r.actual - r.predicted_hi if above else r.predicted_lo - r.actual
        overlap = r.actual_lo <= r.predicted_hi and r.predicted_lo <= r.actual_hi
        out.append(f"The prediction is wrong at {r.point} (Eq. 3 share {r.share:.3f}, {fmt_number(r.tokens, digits=0)} "
                   f"PHP tokens): it predicts {fmt_interval(r.predicted, r.predicted_lo, r.predicted_hi, digits=3, label=label)}, "
                   f"the trained run measures {fmt_interval(r.actual, r.actual_lo, r.actual_hi, digits=3, label=label)}, "
                   f"{gap:.2g} {'above' if above else 'below'} the predicted interval"
                   + (" (the two intervals overlap)." if overlap else "."))
    points = {p.get("name"): p for p in summary.get("points") or [] if isinstance(p, dict)}
    for r in per[per["point"] == "recommended"].itertuples(index=False):
        if r.feasible:
            continue
        info = points.get("recommended", {})
        asked = info.get("asked_share", None if pd.isna(r.asked_share) else r.asked_share)
        want = info.get("asked_tokens")
        eta = info.get("eta_python") or summary.get("eta_python")
        if asked is None or asked == 0:
            ask = "no finite number of PHP tokens (its share is 0: keep training)"
        else:
            ask = f"a Python share of {asked:.4g}" + (
                f" = {fmt_number(want, digits=0)} PHP tokens" if want is not None else
                " = infinitely many PHP tokens" if "asked_tokens" in info else "") + (
                f" for {fmt_number(eta, digits=0)} Python tokens" if eta else "")
        where = ("the fewest tokens a run can train (one training step)" if want is not None and want < r.tokens
                 else "the cap on a mixture run's PHP tokens")
        out.append(f"The recommendation could not be trained at this scale: Algorithm 1 asks for {ask}; the run "
                   f"named 'recommended' was trained at {where}, {fmt_number(r.tokens, digits=0)} PHP tokens "
                   f"(Eq. 3 share {r.share:.3f}), so it measures the nearest feasible point, not the recommendation.")
    return out


def _finding(rep: LoopReport) -> str:
    label = f"{rep.confidence:.0%} CI"
    rho = ("Spearman undefined (fewer than 3 points or a constant side)" if not math.isfinite(rep.spearman)
           else f"Spearman {rep.spearman:.2f} over {rep.n_points} points (p = {rep.spearman_p:.2g})")
    text = (f"Measured against predicted ({METRIC_TEXT}, {rep.n_seeds} seed{'s' if rep.n_seeds != 1 else ''}): "
            f"{rho}, mean absolute error {rep.mae:.3f}, {rep.covered} of {rep.n_points} measured values inside "
            f"the predicted {rep.confidence:.0%} interval")
    if math.isfinite(rep.rec_minus_nat):
        text += f"; recommended − natural {_signed(rep.rec_minus_nat)}"
        if math.isfinite(rep.rec_minus_nat_lo):
            text += f" ({label} {_signed(rep.rec_minus_nat_lo)} to {_signed(rep.rec_minus_nat_hi)})"
    wrong = rep.n_points - rep.covered
    if wrong:
        text += f". The prediction is wrong at {wrong} of {rep.n_points} points"
    rec = rep.per_point[rep.per_point["point"] == "recommended"]
    if len(rec) and not bool(rec["feasible"].iloc[0]):
        text += ("; the recommendation was infeasible at this scale (trained at the nearest feasible point)")
    return text + "."


def _figure_html(rep: LoopReport) -> str:
    png = rep.figure
    if not png.is_file():
        return (f"<p class='muted'>No figure: {_esc(png)} is missing (benchmarks/closed_loop.py draws it at the "
                "end of the loop).</p>")
    uri = "data:image/png;base64," + base64.b64encode(png.read_bytes()).decode()
    return (f"<figure id='figure-loop'><img alt='closed loop' src='{uri}'><figcaption><b>loop.</b> Left: the "
            "continual run's checkpoints at their Eq. 2 share (grey, bars: the share's interval) with the "
            f"prediction smoothed along the share and its {rep.confidence:.0%} band; the mixture runs at their "
            "Eq. 3 share, measured (filled, one marker per seed, bars: the item interval) and predicted (open "
            "squares); dashed: Algorithm 1's share, dotted: the natural corpus. Right: predicted against "
            "measured, with the identity line.</figcaption></figure>")


def loop_section(loop_dir: str | Path, *, id: str = "closed-loop",
                 title: str = "Closed loop: Algorithm 1 against trained mixture runs") -> ReportSection:
    """The report section of a loop directory (``benchmarks/closed_loop.py --out DIR``); pass it to
    :func:`~lensprobe.present.report.write_report` (``sections=[...]``) or use ``lensprobe report
    RUN_DIR --loop DIR``. Raises ``FileNotFoundError`` / ``ValueError`` naming the file."""
    rep = read_loop(loop_dir)
    label = f"{rep.confidence:.0%} CI"
    s = rep.summary
    parts = [f"<p class='muted'>From <code>{_esc(rep.loop_dir.resolve())}</code>: {rep.n_points} mixture points, "
             f"{rep.n_seeds} seed{'s' if rep.n_seeds != 1 else ''}; {_esc(METRIC_TEXT)}.</p>"]
    rec = s.get("recommendation") or {}
    if rec:
        if rec.get("error"):
            parts.append(f"<p><b>Algorithm 1.</b> <span class='weak'>No finite recommendation: {_esc(rec['error'])}</span></p>")
        else:
            lo_hi = rec.get("share_interval") or [None, None]
            tl, th = (list(rec.get("tokens_interval") or []) + [None, None])[:2]
            upper = "unbounded above" if th is None and tl is not None else fmt_number(th, digits=0)
            parts.append(
                f"<p><b>Algorithm 1</b> on the continual run: Python share "
                f"{fmt_interval(rec.get('share'), lo_hi[0], lo_hi[1], digits=4, label=label)} at step "
                f"{fmt_number(rec.get('best_step'), digits=0)}, i.e. {fmt_number(rec.get('tokens'), digits=0)} PHP tokens "
                f"({label} {fmt_number(tl, digits=0)} to {upper}) for {fmt_number(s.get('eta_python'), digits=0)} Python "
                f"tokens (the base's). Natural corpus: {fmt_number(s.get('natural_tokens'), digits=0)} PHP tokens "
                "(all the continual run saw).</p>")
    parts.append(_figure_html(rep))

    rho = ("— (fewer than 3 points or a constant side)" if not math.isfinite(rep.spearman)
           else f"{rep.spearman:.2f} over {rep.n_points} points ("
           + ("exact permutation" if rep.n_points <= 8 else "t approximation") + f" p = {rep.spearman_p:.2g})")
    nat = rep.per_point[rep.per_point["point"] == "natural"]
    rcm = rep.per_point[rep.per_point["point"] == "recommended"]
    stat_rows = [{"statistic": "Spearman ρ (predicted, measured; seed means)", "value": rho},
                 {"statistic": "mean absolute error |predicted − measured|", "value": f"{rep.mae:.3f}"},
                 {"statistic": f"measured inside the predicted {rep.confidence:.0%} interval",
                  "value": f"{rep.covered} of {rep.n_points}"}]
    for name, sel in (("recommended", rcm), ("natural", nat)):
        if len(sel):
            r = sel.iloc[0]
            stat_rows.append({"statistic": f"{name}: measured ({label}, {rep.actual_interval})",
                              "value": fmt_interval(r["actual"], r["actual_lo"], r["actual_hi"], label=label)
                              + ("" if r["feasible"] else " — infeasible, trained at the nearest feasible point")})
    if math.isfinite(rep.rec_minus_nat):
        iv = (f" ({label} {_signed(rep.rec_minus_nat_lo)} to {_signed(rep.rec_minus_nat_hi)})"
              if math.isfinite(rep.rec_minus_nat_lo) else "")
        stat_rows.append({"statistic": f"recommended − natural ({rep.rec_minus_nat_method})",
                          "value": _signed(rep.rec_minus_nat) + iv})
    parts.append("<h3>Predicted against measured</h3>" + _table(stat_rows, numeric=("value",)))
    if rep.wrong:
        parts.append("<ul>" + "".join(f"<li class='weak'>{_esc(w)}</li>" for w in rep.wrong) + "</ul>")
    else:
        parts.append(f"<p>Every measured value lies inside its predicted {rep.confidence:.0%} interval.</p>")

    rows = [{"point": r.point, "Eq. 3 Python share": fmt_number(r.share, digits=3),
             "PHP tokens": fmt_number(r.tokens, digits=0),
             f"predicted ({label})": fmt_interval(r.predicted, r.predicted_lo, r.predicted_hi, label=label),
             f"measured ({label})": fmt_interval(r.actual, r.actual_lo, r.actual_hi, label=label),
             "error (predicted − measured)": _signed(r.predicted - r.actual),
             "inside": "yes" if r.inside else "no", "feasible": "yes" if r.feasible else "no (trained at the limit)"}
            for r in rep.per_point.itertuples(index=False)]
    parts.append(f"<h3>Per point (measured: {_esc(rep.actual_interval)})</h3>"
                 + _table(rows, numeric=("Eq. 3 Python share", "PHP tokens", "error (predicted − measured)")))
    if rep.n_seeds > 1:
        runs = [{"point": r.point, "seed": fmt_number(r.seed, digits=0),
                 f"measured ({label}, items)": fmt_interval(r.actual, r.actual_lo, r.actual_hi, label=label),
                 "run": getattr(r, "run", "—")} for r in rep.table.itertuples(index=False)]
        parts.append("<details><summary>Every mixture run</summary>" + _table(runs) + "</details>")
    commands = s.get("commands") or []
    if commands:
        parts.append("<details><summary>The loop's commands (loop.json)</summary><pre>"
                     + _esc("\n".join(map(str, commands))) + "</pre></details>")
    return ReportSection(id=id, title=title, html="\n".join(parts), finding=_finding(rep))
