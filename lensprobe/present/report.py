"""A self-contained HTML report for a run directory (figures inlined, no external assets).

Reads what the pipeline wrote into ``RUN_DIR``: ``figures/*.png``, ``stages.json``,
``recommendation.yaml``, ``results/`` (the sweep table, summarised), ``commands.json`` (the exact
commands run) and records the versions of the software used.
"""
from __future__ import annotations

import base64
import datetime as _dt
import html
import json
import platform
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

import pandas as pd

from lensprobe.files import atomic_write_text
from lensprobe.babel.rows import summary_rows
from lensprobe.sweep import read_sweep

PACKAGES = ("lensprobe", "torch", "transformers", "accelerate", "transformer-lens", "nnsight", "numpy", "pandas",
            "scipy", "scikit-learn", "seaborn", "tokenizers")

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;
color:#222;line-height:1.45}
h1{font-size:1.6em;margin-bottom:.2em}h2{border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:1.6em}
table{border-collapse:collapse;font-size:.9em;margin:.6em 0}td,th{border:1px solid #ccc;padding:.25em .6em;text-align:left}
th{background:#f3f3f3}figure{margin:1em 0}figure img{max-width:100%;border:1px solid #eee}
figcaption{font-size:.85em;color:#555}pre{background:#f6f8fa;padding:.8em;overflow-x:auto;font-size:.85em}
.note{color:#8a4b00}.muted{color:#777;font-size:.85em}
"""


def software_versions() -> dict[str, str]:
    out = {"python": sys.version.split()[0], "platform": platform.platform()}
    for pkg in PACKAGES:
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = "not installed"
    return out


def _table_html(df: pd.DataFrame, *, max_rows: int = 200) -> str:
    return df.head(max_rows).to_html(index=False, border=0, na_rep="", float_format=lambda v: f"{v:.4g}")


def _figures(run_dir: Path) -> list[tuple[str, str]]:
    figs = []
    for png in sorted((run_dir / "figures").glob("*.png")):
        data = base64.b64encode(png.read_bytes()).decode()
        figs.append((png.stem, f"data:image/png;base64,{data}"))
    return figs


def _stages_section(run_dir: Path) -> str:
    path = run_dir / "stages.json"
    if not path.exists():
        return "<p class='muted'>No stage detection was run (stages.json missing).</p>"
    data = json.loads(path.read_text())
    parts = ["<p class='muted'>A stage's confidence is the share of bootstrap replicas of the curve (its residuals "
             "resampled in blocks, or its seeds resampled) in which the detector finds the same stage with both "
             "boundaries within one smoothing window: how stable the stage is under the curve's own noise, not the "
             "probability that it is real.</p>"]
    for lang, res in data.items():
        rows = [{"stage": s["name"], "start step": s["start_step"], "end step": s["end_step"],
                 "confidence": (res.get("confidence") or {}).get(s["name"])} for s in res.get("stages", [])]
        parts.append(f"<h3>{html.escape(lang)}</h3>")
        if rows:
            parts.append(_table_html(pd.DataFrame(rows)))
        for note in res.get("notes", []):
            parts.append(f"<p class='note'>{html.escape(note)}</p>")
        ev = res.get("evidence", {})
        if ev:
            keep = {k: v for k, v in ev.items() if k != "support"}
            parts.append("<details><summary>evidence</summary><pre>" +
                         html.escape(json.dumps({**keep, "support": ev.get("support")}, indent=2, default=str)) +
                         "</pre></details>")
    return "\n".join(parts)


def _summary_section(run_dir: Path) -> str:
    try:
        df = read_sweep(run_dir)
    except FileNotFoundError:
        return "<p class='muted'>No sweep results.</p>"
    overview = (df.groupby(["probe", "metric"], dropna=False)
                .agg(checkpoints=("checkpoint", "nunique"), rows=("value", "size"))
                .reset_index())
    last = summary_rows(df[df["step"] == df["step"].max()])  # Babel per-item rows: the overview counts them
    head = (last[last["layer"].isna()].groupby(["probe", "language", "identifier", "metric"], dropna=False)["value"]
            .mean().reset_index())
    return ("<p>Sweep table: {} rows, {} checkpoints (steps {}–{}).</p>".format(
        len(df), df["checkpoint"].nunique(), df["step"].min(), df["step"].max())
            + "<h3>Probes and metrics</h3>" + _table_html(overview)
            + "<h3>Final checkpoint (whole-model metrics)</h3>" + _table_html(head))


def write_report(run_dir: str | Path, *, out: str | Path | None = None, title: str | None = None,
                 extra: dict[str, Any] | None = None) -> Path:
    """Write ``RUN_DIR/report/index.html`` (or ``out``) and return its path."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise FileNotFoundError(f"run directory {run_dir} does not exist")
    out = Path(out) if out else run_dir / "report" / "index.html"
    title = title or f"lensprobe report — {run_dir.resolve().name}"
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
             f"<style>{CSS}</style></head><body>", f"<h1>{html.escape(title)}</h1>",
             f"<p class='muted'>Generated {_dt.datetime.now(_dt.timezone.utc).isoformat(timespec='seconds')} "
             f"from <code>{html.escape(str(run_dir.resolve()))}</code></p>"]
    if extra:
        parts.append("<h2>Summary</h2><pre>" + html.escape(json.dumps(extra, indent=2, default=str)) + "</pre>")
    parts.append("<h2>Figures</h2>")
    figs = _figures(run_dir)
    if not figs:
        parts.append("<p class='muted'>No figures.</p>")
    for name, uri in figs:
        parts.append(f"<figure><img alt='{html.escape(name)}' src='{uri}'><figcaption>{html.escape(name)}"
                     "</figcaption></figure>")
    parts.append("<h2>Stages</h2>" + _stages_section(run_dir))
    rec = run_dir / "recommendation.yaml"
    parts.append("<h2>Data-mix recommendation</h2>" + (
        f"<pre>{html.escape(rec.read_text())}</pre>" if rec.exists() else "<p class='muted'>None.</p>"))
    parts.append("<h2>Results</h2>" + _summary_section(run_dir))
    cmds = run_dir / "commands.json"
    parts.append("<h2>Commands</h2>" + (
        f"<pre>{html.escape(json.dumps(json.loads(cmds.read_text()), indent=2))}</pre>" if cmds.exists()
        else "<p class='muted'>Not recorded.</p>"))
    parts.append("<h2>Software</h2>" + _table_html(pd.DataFrame(sorted(software_versions().items()),
                                                                 columns=["package", "version"])))
    parts.append("</body></html>")
    atomic_write_text(out, "\n".join(parts))
    return out
