"""A self-contained HTML report of a sweep / run directory, read in a minute (docs/sweep.md, "Report").

Layout, top to bottom:

1. **Summary** — the findings, each with its interval and its baseline: transfer (the target's
   accuracy on Python-only concepts against the control split and the body prior), the working
   language's drift (Eq.1 share with its Wilson interval and the prompts behind it), LAPE counts
   against the shuffled-label null, the stages with one sentence on what their confidence means,
   the data-mix recommendation with its interval (or why there is none), and one line per added
   :class:`ReportSection` that has a finding;
2. **Figures** — ``figures/*.png`` inlined as data URIs, with captions;
3. **Tables** — the same numbers per checkpoint, formatted;
4. added sections (e.g. the closed loop: :func:`lensprobe.present.loop_report.loop_section`), each under its own
   heading;
5. **Provenance** — the commands run (``commands.json``); run settings, software versions and the
   raw table overview collapsed (``<details>``).

Inputs in ``RUN_DIR``: ``results/`` (the sweep table; required), ``figures/*.png``, ``stages.json``,
``recommendation.yaml``, ``commands.json``, ``summary.json`` (the demo's; or ``extra=``). The file
references nothing outside itself.
"""
from __future__ import annotations

import base64
import datetime as _dt
import json
import math
import platform
import sys
from importlib import metadata
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd
import yaml

from lensprobe.babel.rows import summary_rows
from lensprobe.files import atomic_write_text
from lensprobe.present.axes import SPLIT_TITLES, metric_label
from lensprobe.present.curves import lape_curves, performance_curves, share_curve, transfer
from lensprobe.present.html_parts import ReportSection, _esc, _signed, _table, fmt_interval, fmt_number
from lensprobe.present.tuned import LENS_FIGURE_CAPTION, tuned_lens_section
from lensprobe.sweep import read_sweep

__all__ = ["ReportSection", "write_report", "software_versions", "fmt_number", "fmt_interval", "CONFIDENCE_SENTENCE"]

PACKAGES = ("lensprobe", "torch", "transformers", "accelerate", "transformer-lens", "nnsight", "numpy", "pandas",
            "scipy", "scikit-learn", "seaborn", "tokenizers")

#: what a stage's confidence means, in one sentence (docs/sweep.md, "Stages", item 6)
CONFIDENCE_SENTENCE = ("A stage's confidence is the share of bootstrap replicas of the curve in which the detector "
                       "finds the same stage again, both boundaries within one smoothing window: how stable the stage "
                       "is under the curve's own noise, not the probability that it is real (planted stages average "
                       "0.84; the rare false stages on pure noise 0.54–0.63).")

#: below this a stage's confidence is in the range false stages on noise reach (docs/sweep.md)
WEAK_CONFIDENCE = 0.65

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;
color:#222;line-height:1.45}
h1{font-size:1.6em;margin-bottom:.2em}h2{border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:1.6em}
h3{margin-bottom:.3em}
table{border-collapse:collapse;font-size:.88em;margin:.6em 0}td,th{border:1px solid #ccc;padding:.22em .6em;text-align:left}
td.num{text-align:right;font-variant-numeric:tabular-nums}th{background:#f3f3f3}
figure{margin:1.2em 0}figure img{max-width:100%;height:auto;border:1px solid #eee}
figcaption{font-size:.88em;color:#444;margin-top:.3em}
pre{background:#f6f8fa;padding:.8em;overflow-x:auto;font-size:.82em;white-space:pre-wrap;word-break:break-all}
.summary{background:#f8f9fb;border:1px solid #dde3ea;border-radius:6px;padding:.4em 1.2em}
.summary li{margin:.45em 0}.weak{color:#8a4b00}.muted{color:#777;font-size:.88em}
details{margin:.6em 0}summary{cursor:pointer;color:#234}
.scroll{max-height:28em;overflow:auto;border:1px solid #eee}
"""

FIGURE_ORDER = ("performance", "working_language", "working_language_lenses", "lape_counts", "lape_layers",
                "lens_heatmap")
FIGURE_CAPTIONS = {
    "performance": "Performance per split over training (the paper's Figure 2 layout): the target language's curve "
                   "with its 95% interval, Python's dashed on the same concepts; the control split (concepts never "
                   "trained) and the body prior are the baselines transfer must clear; grey bands: the stages.",
    "working_language": "The working language (the paper's Figure 3): (a) per layer, the share of kept prompts whose "
                        "lens top-1 token is Python (solid) or the target (dashed) at three checkpoints; (b) Eq. 1's "
                        "Python share over training with its 95% Wilson interval; the numbers under the points are "
                        "the prompts kept (x: none kept).",
    "lape_counts": "LAPE neurons per language over training against the shuffled-label null (dashed: its mean; band: "
                   "least to most over the permutations); right: the probability gap of the selected neurons under "
                   "true and shuffled labels.",
    "lape_layers": "LAPE neurons per layer at the last checkpoint.",
    "working_language_lenses": LENS_FIGURE_CAPTION,
    "lens_heatmap": "Lens probability of each language's identifier tokens per checkpoint and layer (log colour "
                    "scale), and per layer at the first and last checkpoint.",
}


def software_versions() -> dict[str, str]:
    out = {"python": sys.version.split()[0], "platform": platform.platform()}
    for pkg in PACKAGES:
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = "not installed"
    return out


# --------------------------------------------------------------------------- inputs
def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not JSON ({exc})") from None


def _figures(run_dir: Path) -> list[tuple[str, str]]:
    pngs = {p.stem: p for p in (run_dir / "figures").glob("*.png")}
    names = [n for n in FIGURE_ORDER if n in pngs] + sorted(n for n in pngs if n not in FIGURE_ORDER)
    return [(n, "data:image/png;base64," + base64.b64encode(pngs[n].read_bytes()).decode()) for n in names]


def _caption(name: str) -> str:
    if name in FIGURE_CAPTIONS:
        return FIGURE_CAPTIONS[name]
    if name.startswith("heatmap_"):
        return FIGURE_CAPTIONS["lens_heatmap"] + f" Language: {name[len('heatmap_'):]}."
    return name.replace("_", " ")


def _target_languages(table: pd.DataFrame, probe: str, metric: str) -> list[str]:
    sel = table[(table["probe"] == probe) & (table["metric"] == metric)]
    return sorted(lang for lang in map(str, sel["language"].dropna().unique()) if lang != "python")


# --------------------------------------------------------------------------- findings
def _transfer_finding(table: pd.DataFrame) -> tuple[str | None, list[dict[str, Any]]]:
    """The transfer sentence and the per-split table at the last checkpoint."""
    babel = table[table["probe"] == "babel"]
    if babel.empty:
        return None, []
    rows: list[dict[str, Any]] = []
    curves = performance_curves(table, metric="line_acc", probe="babel")
    last = curves["step"].max()
    for r in curves[curves["step"] == last].itertuples(index=False):
        rows.append({"language": r.language, "split": r.identifier,
                     "line accuracy (95% CI)": fmt_interval(r.value, r.lo, r.hi),
                     "body prior (95% CI)": fmt_interval(r.prior, r.prior_lo, r.prior_hi),
                     "items": fmt_number(r.n, digits=0) if r.runs == 1 else f"{fmt_number(r.n, digits=0)} over {r.runs} runs"})
    texts = []
    for lang in _target_languages(table, "babel", "line_acc"):
        try:
            t = transfer(table, language=lang)
        except ValueError:
            continue
        diffs = ""
        if t.diff_control is not None:
            diffs = (f"; difference against control {_signed(t.diff_control[0])} (95% CI "
                     f"{_signed(t.diff_control[1])} to {_signed(t.diff_control[2])})")
            if t.diff_prior is not None:
                diffs += (f", against the prior {_signed(t.diff_prior[0])} ({_signed(t.diff_prior[1])} to "
                          f"{_signed(t.diff_prior[2])}), bootstrap over {t.items} items")
        verdict = ("<b>transfer claimed</b>" if t.claimed else "<span class='weak'>transfer not claimed</span>")
        texts.append(
            f"<b>Transfer ({_esc(lang)}).</b> Line accuracy on Python-only concepts at step {fmt_number(t.step, digits=0)}: "
            f"{fmt_interval(t.value, t.lo, t.hi)}, against the control split {fmt_interval(t.control, t.control_lo, t.control_hi)} "
            f"and its body prior {fmt_interval(t.prior, t.prior_lo, t.prior_hi)}{diffs}: {verdict} — "
            f"{_esc(t.reason)}. Python on the same concepts: {fmt_number(t.python)}.")
    return (" ".join(texts) or None), rows


def _working_language_finding(table: pd.DataFrame) -> tuple[str | None, list[dict[str, Any]]]:
    wl = table[(table["probe"] == "working_language") & (table["metric"] == "eq1_python_share")]
    if wl.empty:
        return None, []
    curve = share_curve(table)
    kept = table[(table["probe"] == "working_language") & (table["metric"] == "n_prompts") & table["layer"].isna()
                 & table["identifier"].isna()].groupby(["language", "step"])["value"].sum()
    tokens = table.groupby("step")["tokens"].first() if "tokens" in table.columns else pd.Series(dtype=float)
    rows, texts = [], []
    for lang, g in curve.groupby("key", sort=True):
        g = g.sort_values("step")
        for r in g.itertuples(index=False):
            total = kept.get((lang, r.step), np.nan)
            rows.append({"language": lang, "step": fmt_number(r.step, digits=0), "tokens": fmt_number(tokens.get(r.step), digits=0),
                         "Eq. 1 Python share (95% CI)": fmt_interval(r.value, r.lo, r.hi),
                         "prompts kept": fmt_number(r.kept, digits=0) + (f" of {fmt_number(total, digits=0)}" if np.isfinite(total) else "")})
        finite = g[g["value"].notna()]
        if finite.empty:
            texts.append(f"<b>Working language ({_esc(lang)}).</b> No Eq. 1 share at any of {len(g)} checkpoints: "
                         "no prompt kept (the model never writes the target identifiers) or no counted top-1 in "
                         "either set, so Eq. 1 (the paper's rule) is undefined; see the <code>*_all_prompts</code> rows.")
            continue
        a, b = finite.iloc[0], finite.iloc[-1]
        if len(finite) == 1:
            drift = "one checkpoint only"
        elif b["lo"] > a["hi"] or b["hi"] < a["lo"]:
            drift = f"{'rises' if b['value'] > a['value'] else 'falls'} by {abs(b['value'] - a['value']):.2f} (intervals disjoint)"
        else:
            drift = f"change {_signed(b['value'] - a['value'])}, within the intervals"
        none = int((g["value"].isna() & (g["kept"] == 0)).sum())
        uncounted = int((g["value"].isna() & (g["kept"] > 0)).sum())
        texts.append(
            f"<b>Working language ({_esc(lang)}).</b> Eq. 1 Python share {fmt_interval(a['value'], a['lo'], a['hi'])}, "
            f"n = {fmt_number(a['n'], digits=0)} prompts, at step {fmt_number(a['step'], digits=0)} → "
            f"{fmt_interval(b['value'], b['lo'], b['hi'])}, n = {fmt_number(b['n'], digits=0)}, at step {fmt_number(b['step'], digits=0)}: "
            f"{drift}" + (f"; no prompt kept at {none} of {len(g)} checkpoints (share undefined there)" if none else "")
            + (f"; at {uncounted} more the kept prompts' lens never ranks either identifier first at a counted "
               "layer (share undefined)" if uncounted else "")
            + ". Baseline: 0.5, no preference between the two languages' identifiers.")
    return " ".join(texts), rows


def _lape_finding(table: pd.DataFrame) -> tuple[str | None, list[dict[str, Any]]]:
    lape = table[(table["probe"] == "lape") & (table["metric"] == "n_neurons") & table["layer"].isna()]
    if lape.empty:
        return None, []
    from lensprobe.present.lape_figures import lape_null_summary

    curves = lape_curves(table)
    rows = []
    for x, g in curves.groupby("x", sort=True):  # one row per checkpoint: count, null mean (band), position
        row: dict[str, Any] = {"step": fmt_number(x, digits=0)}
        for r in g.sort_values("language").itertuples(index=False):
            null = fmt_number(r.null, digits=1)
            if r.band:
                null += f" ({fmt_number(r.null_lo, digits=0)}–{fmt_number(r.null_hi, digits=0)})"
            row[f"{r.language}: neurons, null mean (band), position"] = (
                f"{fmt_number(r.value, digits=0)} · {null} · {r.position or '—'}")
        rows.append(row)
    where = lape_null_summary(curves)
    parts = []
    for lang, g in curves.groupby("language", sort=True):
        g = g.sort_values("x")
        parts.append(f"{_esc(lang)} {fmt_number(g['value'].iloc[0], digits=0)} → {fmt_number(g['value'].iloc[-1], digits=0)}"
                     f" neurons ({_esc(where.get(str(lang), 'no null rows'))})")
    gap = table[(table["probe"] == "lape") & table["language"].isna() & table["layer"].isna()]
    true_gap = gap[gap["metric"] == "prob_gap_mean"]["value"].mean()
    null_gap = gap[gap["metric"] == "null_prob_gap_mean"]["value"].mean()
    text = "<b>LAPE.</b> " + "; ".join(parts) + "."
    if np.isfinite(true_gap) and np.isfinite(null_gap):
        specific = true_gap > 2 * null_gap
        text += (f" Mean probability gap of the selected neurons {true_gap:.2f} against {null_gap:.2f} under shuffled "
                 f"labels: {'language-specific neurons' if specific else 'no clearer than the null'}"
                 + ("; under shuffled labels the selected neurons are shared and count for every language, so counts "
                    "below the null are what specific neurons look like (docs/lape.md)." if specific else "."))
    return text, rows


def _stages_finding(stages: Mapping[str, Any] | None) -> tuple[str | None, str]:
    """The stages sentence for the summary and the stages table (HTML)."""
    if not stages:
        return None, "<p class='muted'>No stage detection was run (stages.json missing).</p>"
    texts, parts = [], [f"<p class='muted'>{_esc(CONFIDENCE_SENTENCE)}</p>"]
    for lang, res in stages.items():
        found = res.get("stages", [])
        conf = res.get("confidence") or {}
        ev = res.get("evidence") or {}
        what = metric_label(str(ev["metric"])) if ev.get("metric") else ""
        if ev.get("identifier"):
            what += " on " + SPLIT_TITLES.get(str(ev["identifier"]), str(ev["identifier"])).format(target=lang)
        head = f"<b>Stages ({_esc(lang)}{' ' + _esc(what) if what else ''}).</b> "
        if found:
            items = []
            for s in found:
                c = conf.get(s["name"])
                weak = c is not None and c < WEAK_CONFIDENCE
                cs = "" if c is None else f", confidence {c:.2f}" + (" — weak" if weak else "")
                items.append(f"{_esc(s['name'])} steps {fmt_number(s['start_step'], digits=0)}–{fmt_number(s['end_step'], digits=0)}{cs}")
            weak_any = any((conf.get(s["name"]) or 1) < WEAK_CONFIDENCE for s in found)
            texts.append(head + "; ".join(items) + "."
                         + (f" <span class='weak'>Confidences below {WEAK_CONFIDENCE} are in the range false stages "
                            "on noise reach.</span>" if weak_any else ""))
        else:
            texts.append(head + "none found" + (": " + _esc("; ".join(res.get("notes", []))) if res.get("notes") else "")
                         + ".")
        parts.append(f"<h3>{_esc(lang)}</h3>")
        rows = [{"stage": s["name"], "start step": fmt_number(s["start_step"], digits=0), "end step": fmt_number(s["end_step"], digits=0),
                 "confidence": fmt_number(conf.get(s["name"]))} for s in found]
        if rows:
            parts.append(_table(rows, numeric=("start step", "end step", "confidence")))
        for note in res.get("notes", []):
            parts.append(f"<p class='weak'>{_esc(note)}</p>")
    return " ".join(texts) + f" <span class='muted'>{_esc(CONFIDENCE_SENTENCE)}</span>", "\n".join(parts)


def _recommendation_finding(run_dir: Path, extra: Mapping[str, Any] | None) -> str | None:
    rec = (extra or {}).get("recommendation") if isinstance(extra, Mapping) else None
    path = run_dir / "recommendation.yaml"
    if isinstance(rec, Mapping):
        if "error" in rec:
            return f"<b>Recommendation.</b> <span class='weak'>None: {_esc(rec['error'])}</span>"
        target = next((k[: -len("_tokens")] for k in rec if k.endswith("_tokens") and k != "python_tokens"), "target")
        tokens, (tlo, thi) = rec.get(f"{target}_tokens"), rec.get("tokens_interval", (None, None))
        share, (slo, shi) = rec.get("share"), rec.get("share_interval", (None, None))
        upper = "unbounded above (the share's interval reaches 0)" if thi is not None and math.isinf(thi) else \
            fmt_number(thi, digits=0)
        name = target.upper() if len(target) <= 3 else target.capitalize()
        text = (f"<b>Recommendation (Algorithm 1).</b> {fmt_number(tokens, digits=0)} {_esc(name)} tokens for "
                f"{fmt_number(rec.get('python_tokens'), digits=0)} Python tokens (90% CI {fmt_number(tlo, digits=0)} "
                f"to {upper}); Python-system share {fmt_interval(share, slo, shi, digits=3, label='90% CI')} at the best "
                f"checkpoint, step {fmt_number(rec.get('best_step'), digits=0)}")
        cands = rec.get("candidates") or []
        if len(cands) > 1:
            text += f" (candidates: steps {', '.join(fmt_number(c, digits=0) for c in cands)})"
        return text + "."
    if path.exists():
        raw = path.read_text()
        if raw.lstrip().startswith("# no recommendation"):
            return f"<b>Recommendation.</b> <span class='weak'>None: {_esc(raw.strip().lstrip('#').strip())}</span>"
        try:
            doc = yaml.safe_load(raw) or {}
        except yaml.YAMLError as exc:
            raise ValueError(f"{path}: not YAML ({exc})") from None
        tokens = ", ".join(f"{_esc(k)} {fmt_number(v, digits=0)}" for k, v in (doc.get("tokens") or {}).items())
        return f"<b>Recommendation.</b> Tokens: {tokens}. {_esc(doc.get('notes', ''))}"
    return None


# --------------------------------------------------------------------------- provenance
def _flatten(d: Mapping[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    out = []
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, Mapping):
            out += _flatten(v, key + ".")
        else:
            out.append((key, v))
    return out


def _value_text(v: Any) -> str:
    if isinstance(v, (list, tuple)):
        return ", ".join(_value_text(x) for x in v)
    if isinstance(v, bool) or v is None:
        return str(v)
    if isinstance(v, (int, float, np.integer, np.floating)):
        return fmt_number(v, digits=0 if math.isfinite(float(v)) and float(v).is_integer() else 3)
    return str(v)


def _raw_overview(table: pd.DataFrame) -> str:
    overview = (table.groupby(["probe", "metric"], dropna=False)
                .agg(checkpoints=("checkpoint", "nunique"), rows=("value", "size")).reset_index())
    rows = [{"probe": r.probe, "metric": r.metric, "checkpoints": fmt_number(r.checkpoints, digits=0), "rows": fmt_number(r.rows, digits=0)}
            for r in overview.itertuples(index=False)]
    last = summary_rows(table[table["step"] == table["step"].max()])
    head = (last[last["layer"].isna()].groupby(["probe", "language", "identifier", "metric"], dropna=False)["value"]
            .mean().reset_index())
    whole = [{"probe": r.probe, "language": "" if pd.isna(r.language) else r.language,
              "identifier": "" if pd.isna(r.identifier) else r.identifier, "metric": r.metric,
              "value": fmt_number(r.value, digits=3)} for r in head.itertuples(index=False)]
    return ("<details><summary>Probes and metrics in the table</summary><div class='scroll'>"
            + _table(rows, numeric=("checkpoints", "rows")) + "</div></details>"
            + "<details><summary>Every whole-model number at the last checkpoint</summary><div class='scroll'>"
            + _table(whole, numeric=("value",)) + "</div></details>")


# --------------------------------------------------------------------------- the report
def write_report(run_dir: str | Path, *, out: str | Path | None = None, title: str | None = None,
                 extra: Mapping[str, Any] | None = None, sections: Sequence[ReportSection] = ()) -> Path:
    """Write ``RUN_DIR/report/index.html`` (or ``out``) and return its path.

    ``extra``: the run's summary (the demo passes its ``summary.json`` content; read from
    ``RUN_DIR/summary.json`` when not given): its ``recommendation`` gives the recommendation's
    interval, the rest is listed under the run settings. ``sections``: :class:`ReportSection` s
    placed after the tables. Raises ``ValueError`` when ``RUN_DIR`` has no sweep results.
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise FileNotFoundError(f"run directory {run_dir} does not exist")
    try:
        table = read_sweep(run_dir)
    except FileNotFoundError as exc:
        raise ValueError(f"{exc}; a report summarises a sweep table") from None
    lens_section = None if any(s.id == "tuned-lens" for s in sections) else tuned_lens_section(table)
    sections = [*sections] + ([lens_section] if lens_section is not None else [])  # docs/tuned-lens.md
    ids = [s.id for s in sections]
    if len(set(ids)) != len(ids) or set(ids) & {"summary", "figures", "tables", "provenance"}:
        raise ValueError(f"report section ids must be unique and not summary/figures/tables/provenance: {ids}")
    if extra is None and (run_dir / "summary.json").is_file():
        extra = _read_json(run_dir / "summary.json")
    stages = _read_json(run_dir / "stages.json") if (run_dir / "stages.json").exists() else None
    out = Path(out) if out else run_dir / "report" / "index.html"
    title = title or f"lensprobe report — {run_dir.resolve().name}"

    transfer_text, perf_rows = _transfer_finding(table)
    wl_text, wl_rows = _working_language_finding(table)
    lape_text, lape_rows = _lape_finding(table)
    stages_text, stages_html = _stages_finding(stages)
    rec_text = _recommendation_finding(run_dir, extra)
    findings = [t for t in (transfer_text, wl_text, lape_text, stages_text, rec_text) if t]
    findings += [f"<b>{_esc(s.title)}.</b> {_esc(s.finding)}" for s in sections if s.finding]

    steps = pd.to_numeric(table["step"], errors="coerce")
    tokens = pd.to_numeric(table["tokens"], errors="coerce")
    scope = (f"{fmt_number(table['checkpoint'].nunique(), digits=0)} checkpoints of {fmt_number(table['run'].nunique(), digits=0)} "
             f"run(s) ({', '.join(map(_esc, sorted(map(str, table['run'].dropna().unique()))))}), steps "
             f"{fmt_number(steps.min(), digits=0)}–{fmt_number(steps.max(), digits=0)}"
             + (f", {fmt_number(tokens.min(), digits=0)}–{fmt_number(tokens.max(), digits=0)} tokens" if tokens.notna().any() else "")
             + f"; probes: {', '.join(map(_esc, sorted(map(str, table['probe'].dropna().unique()))))}.")
    parts = [f"<!doctype html><html lang='en'><head><meta charset='utf-8'><meta name='viewport' "
             f"content='width=device-width, initial-scale=1'><title>{_esc(title)}</title><style>{CSS}</style>"
             f"</head><body>", f"<h1>{_esc(title)}</h1>",
             f"<p class='muted'>Generated {_dt.datetime.now(_dt.timezone.utc).isoformat(timespec='seconds')} from "
             f"<code>{_esc(run_dir.resolve())}</code>: {scope}</p>"]

    parts.append("<section id='summary'><h2>Summary</h2><div class='summary'><ul>"
                 + "".join(f"<li>{t}</li>" for t in findings) + "</ul></div>"
                 + ("" if findings else "<p class='muted'>The table has none of the rows the findings read.</p>")
                 + "</section>")

    parts.append("<section id='figures'><h2>Figures</h2>")
    figs = _figures(run_dir)
    if not figs:
        parts.append("<p class='muted'>No figures (run <code>lensprobe plot</code>).</p>")
    for name, uri in figs:
        parts.append(f"<figure id='figure-{_esc(name)}'><img alt='{_esc(name)}' src='{uri}'>"
                     f"<figcaption><b>{_esc(name)}.</b> {_esc(_caption(name))}</figcaption></figure>")
    parts.append("</section>")

    parts.append("<section id='tables'><h2>Tables</h2>")
    if perf_rows:
        parts.append(f"<h3>Performance per split at the last checkpoint (step {fmt_number(steps.max(), digits=0)})</h3>"
                     + _table(perf_rows))
    parts.append("<h3>Stages</h3>" + stages_html)
    if wl_rows:
        parts.append("<h3>Working language per checkpoint</h3><div class='scroll'>" + _table(wl_rows) + "</div>")
    if lape_rows:
        parts.append("<h3>LAPE neurons per checkpoint</h3><div class='scroll'>" + _table(lape_rows) + "</div>")
    parts.append("</section>")

    for s in sections:
        parts.append(f"<section id='{_esc(s.id)}'><h2>{_esc(s.title)}</h2>{s.html}</section>")

    parts.append("<section id='provenance'><h2>Provenance</h2>")
    cmds = run_dir / "commands.json"
    if cmds.exists():
        listed = _read_json(cmds)
        lines = [" ".join(map(str, c)) if isinstance(c, (list, tuple)) else str(c) for c in listed]
        parts.append("<h3>Commands</h3><pre>" + _esc("\n".join(lines)) + "</pre>")
    else:
        parts.append("<p class='muted'>Commands not recorded (no commands.json).</p>")
    if extra:
        settings = [{"setting": k, "value": _value_text(v)} for k, v in _flatten(extra)]
        parts.append("<details><summary>Run settings and timings</summary>" + _table(settings) + "</details>")
    parts.append("<details><summary>Software versions</summary>"
                 + _table([{"package": k, "version": v} for k, v in sorted(software_versions().items())])
                 + "</details>")
    parts.append(_raw_overview(table))
    if stages:
        ev = {lang: res.get("evidence", {}) for lang, res in stages.items()}
        parts.append("<details><summary>Stage evidence (stages.json)</summary><pre>"
                     + _esc(json.dumps(ev, indent=1, default=str)) + "</pre></details>")
    parts.append("</section></body></html>")
    atomic_write_text(out, "\n".join(parts))
    return out
