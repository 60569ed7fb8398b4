"""The working language through both lenses, and the tuned lens' held-out KL (docs/tuned-lens.md).

Reads the sweep rows of a working-language probe run with the logit lens and with ``lens="tuned"``
(metrics ending in ``_tuned_lens``, the held-out KL rows ``heldout_kl_logit_lens`` /
``heldout_kl_tuned_lens``):

* :func:`lens_share_table` — Eq.1's Python share over checkpoints, one column pair per lens, each
  with its Wilson interval and the prompts behind it;
* :func:`lens_layer_table` — per layer, the share of kept prompts whose top-1 is Python / the
  target, through each lens, with the prompts behind each value;
* :func:`lens_kl_table` — per checkpoint and layer, the held-out KL of both lenses;
* :func:`plot_lenses` — the three as one figure; :func:`tuned_lens_section` — the report section.
"""
from __future__ import annotations

import html
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from lensprobe.present.html_parts import ReportSection, _table
from lensprobe.probes.working_language import TUNED_SUFFIX

__all__ = ["has_tuned_rows", "lens_share_table", "lens_layer_table", "lens_kl_table", "plot_lenses",
           "tuned_lens_section", "LENS_FIGURE_CAPTION"]

LENS_FIGURE_CAPTION = ("The working language through the logit lens (the paper's) and the tuned lens (per-checkpoint "
                       "translators fitted on held-out PHP and Python): (a) Eq. 1's Python share over training with its "
                       "95% Wilson interval, the prompts behind each point beneath it; (b) per layer at the last "
                       "checkpoint, the share of kept prompts whose top-1 token is Python (solid) or the target "
                       "(dashed); (c) held-out KL(final ‖ layer) of both lenses at the last checkpoint.")

_LENSES = (("logit", ""), ("tuned", TUNED_SUFFIX))


def _wl(table: pd.DataFrame) -> pd.DataFrame:
    return table[table["probe"] == "working_language"]


def has_tuned_rows(table: pd.DataFrame) -> bool:
    """Whether the table holds working-language rows read through the tuned lens."""
    return bool((_wl(table)["metric"] == "eq1_python_share" + TUNED_SUFFIX).any())


def _suite_rows(table: pd.DataFrame, metric: str, language: str | None) -> pd.DataFrame:
    sel = _wl(table)
    sel = sel[(sel["metric"] == metric) & sel["identifier"].isna()]
    if language is not None:
        sel = sel[sel["language"] == language]
    return sel


def _wilson(p: float, n: float, z: float = 1.959964) -> tuple[float, float]:
    if not n or not np.isfinite(p):
        return float("nan"), float("nan")
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return centre - half, centre + half


def _language(table: pd.DataFrame, language: str | None) -> str:
    langs = sorted(map(str, _suite_rows(table, "eq1_python_share" + TUNED_SUFFIX, None)["language"].dropna().unique()))
    if not langs:
        raise ValueError("no working-language rows through the tuned lens (metric eq1_python_share_tuned_lens); run "
                         "the probe with lens=tuned (docs/tuned-lens.md)")
    if language is None:
        return langs[0]
    if language not in langs:
        raise ValueError(f"no tuned-lens rows for language {language!r}; the table has {', '.join(langs)}")
    return language


def lens_share_table(table: pd.DataFrame, *, language: str | None = None) -> pd.DataFrame:
    """Eq.1's Python share per checkpoint through each lens: columns ``step``, then per lens
    ``<lens>``, ``<lens>_lo``, ``<lens>_hi`` (95% Wilson interval on the prompts) and ``<lens>_n``
    (prompts kept, the paper's rule). Steps are averaged over runs (prompts summed)."""
    language = _language(table, language)
    out = None
    for lens, suffix in _LENSES:
        sel = _suite_rows(table, "eq1_python_share" + suffix, language)
        g = sel.assign(n=pd.to_numeric(sel["n"], errors="coerce").astype(float),
                       value=pd.to_numeric(sel["value"], errors="coerce")).groupby("step")
        part = pd.DataFrame({lens: g["value"].mean(), f"{lens}_n": g["n"].sum()})
        ci = [_wilson(p, n) for p, n in zip(part[lens], part[f"{lens}_n"])]
        part[f"{lens}_lo"] = [c[0] for c in ci]
        part[f"{lens}_hi"] = [c[1] for c in ci]
        out = part if out is None else out.join(part, how="outer")
    out.index = out.index.astype(float)
    return out.astype(float).rename_axis("step").reset_index()


def lens_layer_table(table: pd.DataFrame, *, language: str | None = None, step: float | None = None) -> pd.DataFrame:
    """Per layer at ``step`` (default the last): ``layer``, ``lens``, ``python`` and ``target``
    (share of kept prompts whose top-1 is in the Python / target set) and ``n`` (prompts kept)."""
    language = _language(table, language)
    rows = []
    for lens, suffix in _LENSES:
        for cls in ("python", "target"):
            sel = _wl(table)
            sel = sel[(sel["metric"] == f"share_{cls}_top1{suffix}") & sel["identifier"].isna()
                      & (sel["language"] == language)]
            if sel.empty:
                continue
            at = sel["step"].max() if step is None else step
            sel = sel[sel["step"] == at]
            for layer, g in sel.groupby("layer"):
                rows.append({"step": float(at), "layer": int(layer), "lens": lens, "class": cls,
                             "value": float(pd.to_numeric(g["value"]).mean()), "n": int(g["n"].sum())})
    if not rows:
        return pd.DataFrame(columns=["step", "layer", "lens", "python", "target", "n"])
    df = pd.DataFrame(rows)
    wide = df.pivot_table(index=["step", "layer", "lens"], columns="class", values="value", aggfunc="first")
    n = df.groupby(["step", "layer", "lens"])["n"].first()
    return wide.join(n).reset_index()


def lens_kl_table(table: pd.DataFrame, *, language: str | None = None) -> pd.DataFrame:
    """Held-out KL(final ‖ layer) per checkpoint and layer: ``step``, ``layer``, ``kl_logit``,
    ``kl_tuned`` (nats per token, mean over runs) and ``n_tokens``."""
    language = _language(table, language)
    sel = _wl(table)
    sel = sel[sel["metric"].isin(["heldout_kl_logit_lens", "heldout_kl_tuned_lens"]) & (sel["language"] == language)]
    if sel.empty:
        return pd.DataFrame(columns=["step", "layer", "kl_logit", "kl_tuned", "n_tokens"])
    wide = sel.pivot_table(index=["step", "layer"], columns="metric", values="value", aggfunc="mean")
    n = pd.to_numeric(sel["n"], errors="coerce").groupby([sel["step"], sel["layer"]]).mean()  # per run
    wide = wide.rename(columns={"heldout_kl_logit_lens": "kl_logit", "heldout_kl_tuned_lens": "kl_tuned"}).astype(float)
    wide["n_tokens"] = n.astype(float).round().astype(int)
    wide = wide.reset_index()
    wide["step"], wide["layer"] = wide["step"].astype(float), wide["layer"].astype(int)
    return wide


def plot_lenses(table: pd.DataFrame, *, language: str | None = None) -> Any:
    """(a) Eq.1 over checkpoints, (b) per-layer top-1 shares at the last checkpoint, (c) held-out KL
    per layer at the last checkpoint, each through both lenses."""
    language = _language(table, language)
    shares = lens_share_table(table, language=language)
    layers = lens_layer_table(table, language=language)
    kl = lens_kl_table(table, language=language)
    colors = {"logit": "#1f77b4", "tuned": "#d62728"}
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    ax = axes[0]
    for lens in ("logit", "tuned"):
        ax.plot(shares["step"], shares[lens], "o-", color=colors[lens], label=f"{lens} lens")
        ax.fill_between(shares["step"], shares[f"{lens}_lo"], shares[f"{lens}_hi"], color=colors[lens], alpha=0.15)
    for s, n in zip(shares["step"], shares["logit_n"]):
        ax.annotate(f"{int(n)}", (s, 1.08), ha="center", va="center", fontsize=7, color="#555")
    if len(shares) and shares["step"].min() >= 0 and shares["step"].max() > 50:
        ax.set_xscale("symlog", linthresh=10)  # early checkpoints are dense (the demo's log-spaced snapshots)
    ax.set_ylim(-0.02, 1.13)
    ax.set_yticks([0, 0.2, 0.4, 0.6, 0.8, 1.0])
    ax.set_xlabel("step (numbers at the top: prompts kept)")
    ax.set_ylabel("Eq. 1 Python share")
    ax.set_title(f"(a) working language ({language}) over training")
    ax.legend(frameon=False, loc="center left")
    ax = axes[1]
    for lens in ("logit", "tuned"):
        d = layers[layers["lens"] == lens]
        if d.empty:
            continue
        n = int(d["n"].iloc[0])
        ax.plot(d["layer"], d["python"], "o-", color=colors[lens], label=f"{lens}: Python (n={n})")
        ax.plot(d["layer"], d["target"], "s--", color=colors[lens], label=f"{lens}: {language}")
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel("layer")
    ax.set_ylabel("share of kept prompts (top-1)")
    step = layers["step"].iloc[0] if len(layers) else float("nan")
    ax.set_title(f"(b) per layer at step {step:g}")
    ax.set_xticks(sorted(layers["layer"].unique()) if len(layers) else [])
    if len(layers):
        ax.legend(frameon=False, fontsize=8)
    ax = axes[2]
    if len(kl):
        last = kl[kl["step"] == kl["step"].max()]
        x = np.arange(len(last))
        ax.bar(x - 0.2, last["kl_logit"], 0.4, color=colors["logit"], label="logit lens")
        ax.bar(x + 0.2, last["kl_tuned"], 0.4, color=colors["tuned"], label="tuned lens")
        ax.set_xticks(x, [str(int(v)) for v in last["layer"]])
        ax.set_title(f"(c) held-out KL at step {last['step'].iloc[0]:g} ({int(last['n_tokens'].iloc[0])} tokens)")
        ax.legend(frameon=False)
    ax.set_xlabel("layer")
    ax.set_ylabel("KL(final ‖ layer), nats/token")
    fig.tight_layout()
    return fig


def _fmt(v: Any, digits: int = 2) -> str:
    return "—" if v is None or (isinstance(v, float) and not np.isfinite(v)) else f"{v:.{digits}f}"


def tuned_lens_section(table: pd.DataFrame, *, language: str | None = None) -> Any:
    """The report's section on the two lenses (None when the table has no tuned-lens rows)."""

    if not has_tuned_rows(table):
        return None
    language = _language(table, language)
    shares = lens_share_table(table, language=language)
    layers = lens_layer_table(table, language=language)
    kl = lens_kl_table(table, language=language)
    def share(v: float, lo: float, hi: float) -> str:
        return "—" if not np.isfinite(v) else f"{_fmt(v)} ({_fmt(lo)}–{_fmt(hi)})"

    share_rows = [{"step": _fmt(r.step, 0),
                   "logit lens: Eq. 1 Python share (95% CI)": share(r.logit, r.logit_lo, r.logit_hi),
                   "n (logit)": _fmt(r.logit_n, 0),
                   "tuned lens: Eq. 1 Python share (95% CI)": share(r.tuned, r.tuned_lo, r.tuned_hi),
                   "n (tuned)": _fmt(r.tuned_n, 0)} for r in shares.itertuples(index=False)]
    layer_rows = [{"layer": int(r.layer), "lens": r.lens, "Python top-1 share": _fmt(r.python),
                   f"{language} top-1 share": _fmt(r.target), "prompts kept": int(r.n)}
                  for r in layers.itertuples(index=False)]
    kl_wide = kl.pivot_table(index="step", columns="layer", values=["kl_logit", "kl_tuned"]) if len(kl) else None
    kl_rows = []
    if kl_wide is not None:
        for step, r in kl_wide.iterrows():
            row = {"step": _fmt(step, 0)}
            for layer in sorted(kl["layer"].unique()):
                row[f"layer {int(layer)}: logit / tuned"] = (f"{_fmt(r[('kl_logit', layer)])} / "
                                                             f"{_fmt(r[('kl_tuned', layer)])}")
            kl_rows.append(row)
    finding = None
    last_share = shares.iloc[-1] if len(shares) else None
    eq1 = "" if last_share is None else (
        f"At step {_fmt(last_share['step'], 0)} Eq. 1's Python share is {share(*last_share[['logit', 'logit_lo', 'logit_hi']])} "
        f"through the logit lens and {share(*last_share[['tuned', 'tuned_lo', 'tuned_hi']])} through the tuned lens "
        f"(n = {_fmt(last_share['logit_n'], 0)} prompts, 95% Wilson intervals; '—': no counted top-1, undefined). ")
    if len(kl):
        last = kl[kl["step"] == kl["step"].max()]
        ratio = float((last["kl_tuned"] / last["kl_logit"]).max())
        finding = eq1 + (f"On held-out text the tuned lens' KL(final ‖ layer) at the last checkpoint is at most {ratio:.2f}× "
                   f"the logit lens' at layers {', '.join(str(int(v)) for v in last['layer'])} "
                   f"({', '.join(_fmt(v) for v in last['kl_tuned'])} vs {', '.join(_fmt(v) for v in last['kl_logit'])} "
                   f"nats/token, {int(last['n_tokens'].iloc[0])} tokens); read its working language beside the logit "
                   "lens' (Eq. 1 is defined on the logit lens; a translator can add information of its own).")
    body = ("<p>The same prompts read through the logit lens (the paper's Eq. 1 instrument) and through a tuned lens: "
            "per checkpoint, one affine translator per layer fitted on held-out PHP and Python tokens of the run, "
            "warm-started from the previous checkpoint (docs/tuned-lens.md). A translator is trained on text and can "
            "add information of its own (Belrose et al. 2023): where only the tuned lens shows a language, read it "
            "as linearly recoverable at that layer, not as what the model writes there.</p>"
            f"<h3>Eq. 1 over checkpoints ({html.escape(language)}, prompts the model generates)</h3>"
            f"<div class='scroll'>{_table(share_rows)}</div>"
            f"<h3>Per layer at the last checkpoint</h3>{_table(layer_rows)}"
            "<h3>Held-out KL(final ‖ layer), nats per token</h3>"
            + (f"<div class='scroll'>{_table(kl_rows)}</div>" if kl_rows else "<p class='muted'>No KL rows.</p>"))
    return ReportSection("tuned-lens", "Logit lens and tuned lens", body, finding)
