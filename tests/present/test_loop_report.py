"""The closed loop in the report: ``lensprobe report RUN --loop LOOP`` and ``loop_section`` on synthetic loop
directories (the columns of ``predicted_vs_actual.csv``, a ``loop.json`` and the figure drawn by
``plot_loop``); every number shown is recomputed here from the CSV with scipy/numpy."""
from __future__ import annotations

import base64
import html as htmllib
import json
import math
import re
from itertools import permutations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from lensprobe.analysis.fit.loop import TABLE_COLUMNS
from lensprobe.cli import main
from lensprobe.present.loop import plot_loop, save_loop_figure
from lensprobe.present.loop_report import loop_section, read_loop
from lensprobe.present.report import write_report
from lensprobe.testing.tables import write_sweep

ETA_PY = 5_999_151
NATURAL = 619_113
#: point -> (Eq.3 PHP tokens, predicted, predicted half-width)
POINTS = {"grid-0.0625": (38_695, 0.05, 0.03), "grid-0.25": (154_778, 0.12, 0.04),
          "natural": (NATURAL, 0.30, 0.05), "recommended": (2_476_452, 0.45, 0.06)}


def _loop_dir(path, *, seeds=1, actual=None, feasible=True, spread=0.02, seed=0):
    """A loop directory as benchmarks/closed_loop.py writes it. ``actual``: point -> seed-mean actual
    (default: the prediction); each seed's value is that mean + a centred offset of size ``spread``."""
    rng = np.random.default_rng(seed)
    actual = actual or {p: v[1] for p, v in POINTS.items()}
    offsets = np.linspace(-spread, spread, seeds) if seeds > 1 else np.zeros(1)
    rows = []
    for name, (tokens, pred, half) in POINTS.items():
        share = ETA_PY / (ETA_PY + tokens)
        for k in range(seeds):
            a = actual[name] + offsets[(k + len(rows)) % seeds] + (rng.normal(0, 0.005) if seeds > 1 else 0)
            rows.append({"point": name, "seed": k, "share": share, "tokens": tokens, "predicted": pred,
                         "predicted_lo": pred - half, "predicted_hi": pred + half, "actual": a,
                         "actual_lo": a - 0.08, "actual_hi": a + 0.08, "error": pred - a,
                         "in_predicted_interval": pred - half <= a <= pred + half,
                         "feasible": feasible or name != "recommended",
                         "asked_share": 0.004922 if name == "recommended" else np.nan,
                         "tokens_seen": tokens, "n_items": 40, "run": f"{name}-seed{k}"})
    table = pd.DataFrame(rows, columns=TABLE_COLUMNS)
    path.mkdir(parents=True)
    table.to_csv(path / "predicted_vs_actual.csv", index=False)
    points = [{"name": n, "kind": "grid" if n.startswith("grid") else n, "eta_python": ETA_PY, "eta_target": t,
               "share": ETA_PY / (ETA_PY + t), "feasible": feasible or n != "recommended",
               "asked_share": 0.004922 if n == "recommended" else None,
               "asked_tokens": 1_212_833_296.3 if n == "recommended" else None, "note": ""}
              for n, (t, _, _) in POINTS.items()]
    diff = float((table[table.point == "recommended"].actual.mean() - table[table.point == "natural"].actual.mean()))
    (path / "loop.json").write_text(json.dumps({
        "seeds": seeds, "eta_python": ETA_PY, "natural_tokens": NATURAL, "points": points,
        "recommendation": {"share": 0.004922, "share_interval": [0.0, 0.0143], "tokens": 1_212_833_296.3,
                           "tokens_interval": [412_590_106.0, None], "best_step": 150.0},
        "statistics": {"rec_minus_nat": diff, "rec_minus_nat_lo": diff - 0.07, "rec_minus_nat_hi": diff + 0.06,
                       "rec_minus_nat_method": "bootstrap over 40 items (paired, one seed)"},
        "prediction": {"confidence": 0.9}, "commands": ["lensprobe pretrain babel-mixture --mixture m.yaml"]}))
    s = np.linspace(0, 1, 11)
    curve = pd.DataFrame({"step": np.arange(11) * 10, "share": s[::-1], "share_lo": s[::-1] - 0.01,
                          "share_hi": s[::-1] + 0.01, "value": 0.5 * s, "smoothed": 0.5 * s})
    band = pd.DataFrame({"share": s, "predicted": 0.5 * (1 - s), "predicted_lo": 0.5 * (1 - s) - 0.05,
                         "predicted_hi": 0.5 * (1 - s) + 0.05})
    save_loop_figure(plot_loop(curve, table, band=band), path / "figures" / "loop", formats=("png",))
    return path


def _per_point(path):
    t = pd.read_csv(path / "predicted_vs_actual.csv")
    return t, t.groupby("point", sort=False).agg(predicted=("predicted", "first"), lo=("predicted_lo", "first"),
                                                 hi=("predicted_hi", "first"), actual=("actual", "mean"))


def _section(html):
    m = re.search(r"<section id='closed-loop'>(.*?)</section>", html, flags=re.S)
    assert m, "no closed-loop section"
    return htmllib.unescape(m.group(1))


def _t_interval(values, confidence=0.9):
    v = np.asarray(values, float)
    half = stats.t.ppf(0.5 + confidence / 2, len(v) - 1) * v.std(ddof=1) / math.sqrt(len(v))
    return v.mean(), v.mean() - half, v.mean() + half


@pytest.fixture(scope="module")
def sweep_dir(tmp_path_factory):
    return write_sweep(tmp_path_factory.mktemp("sweep"))


def test_report_shows_the_loop_with_numbers_recomputed_from_the_csv(sweep_dir, tmp_path, capsys):
    # natural measured far above its interval: wrong; the recommendation infeasible (trained at the cap)
    loop = _loop_dir(tmp_path / "loop", actual={"grid-0.0625": 0.06, "grid-0.25": 0.10, "natural": 0.55,
                                                "recommended": 0.47}, feasible=False)
    out = tmp_path / "report.html"
    assert main(["report", str(sweep_dir), "--loop", str(loop), "--out", str(out)]) == 0
    assert capsys.readouterr().out.strip() == str(out)
    html = out.read_text()
    sec = _section(html)
    # the figure: the loop's own PNG, inlined
    png = loop / "figures" / "loop.png"
    assert png.is_file()
    uri = re.search(r"<figure id='figure-loop'><img alt='closed loop' src='data:image/png;base64,([A-Za-z0-9+/=]+)'",
                    html)
    assert uri and base64.b64decode(uri.group(1)) == png.read_bytes()
    # Spearman and MAE recomputed independently from the CSV (seed means per point)
    table, per = _per_point(loop)
    rho = stats.spearmanr(per["predicted"], per["actual"])[0]
    mae = np.mean(np.abs(per["predicted"] - per["actual"]))
    assert rho == pytest.approx(0.8) and mae == pytest.approx((0.01 + 0.02 + 0.25 + 0.02) / 4)
    assert re.search(rf"<td>Spearman ρ \(predicted, measured; seed means\)</td>\s*<td class='num'>{rho:.2f} over 4 "
                     r"points \(exact permutation p = ([0-9.]+)\)</td>", sec)
    # exact two-sided permutation p of rho over the 4! orderings, computed here
    rhos = [stats.spearmanr(per["predicted"], np.asarray(per["actual"])[list(p)])[0] for p in permutations(range(4))]
    p_exact = np.mean(np.abs(rhos) >= abs(rho) - 1e-12)
    assert f"exact permutation p = {p_exact:.2g})" in sec
    assert re.search(rf"<td>mean absolute error \|predicted − measured\|</td>\s*<td class='num'>{mae:.3f}</td>", sec)
    inside = int(((per["lo"] <= per["actual"]) & (per["actual"] <= per["hi"])).sum())
    assert inside == 3 and "<td class='num'>3 of 4</td>" in sec
    # the per-point table: each point's predicted and measured, formatted like the report's tables
    for name, r in per.iterrows():
        row = table[table.point == name].iloc[0]
        assert re.search(rf"<td>{re.escape(name)}</td>\s*<td class='num'>{row.share:.3f}</td>\s*"
                         rf"<td class='num'>{row.tokens:,.0f}</td>\s*<td>{r.predicted:.2f} \(90% CI {r.lo:.2f}–"
                         rf"{r.hi:.2f}\)</td>\s*<td>{row.actual:.2f} \(90% CI {row.actual_lo:.2f}–{row.actual_hi:.2f}\)"
                         "</td>", sec), name
    # plain sentences: the wrong point (and only it), the infeasible recommendation
    assert sec.count("The prediction is wrong at") == 1
    assert "The prediction is wrong at natural (Eq. 3 share 0.906, 619,113 PHP tokens)" in sec
    assert "0.2 above the predicted interval." in sec           # 0.55 - 0.35
    assert ("The recommendation could not be trained at this scale: Algorithm 1 asks for a Python share of 0.004922 "
            "= 1,212,833,296 PHP tokens for 5,999,151 Python tokens; the run named 'recommended' was trained at the "
            "cap on a mixture run's PHP tokens, 2,476,452 PHP tokens") in sec
    # one seed: recommended - natural with loop.json's item interval (its difference equals the CSV's)
    diff = 0.47 - 0.55
    assert f"−{abs(diff):.2f} (90% CI −{abs(diff - 0.07):.2f} to −{abs(diff + 0.06):.2f})" in sec
    # the finding is listed in the summary
    summary = htmllib.unescape(html.split("<section id='summary'>")[1].split("</section>")[0])
    assert (f"Spearman {rho:.2f} over 4 points" in summary and f"mean absolute error {mae:.3f}" in summary
            and "The prediction is wrong at 1 of 4 points" in summary and "recommendation was infeasible" in summary)


def test_seeds_give_intervals_over_seeds(tmp_path):
    loop = _loop_dir(tmp_path / "loop", seeds=3, actual={"grid-0.0625": 0.06, "grid-0.25": 0.11, "natural": 0.31,
                                                        "recommended": 0.44})
    sec = loop_section(loop)
    text = htmllib.unescape(sec.html)
    table, per = _per_point(loop)
    for name in ("recommended", "natural"):     # each point's mean with a Student t interval over its 3 seeds
        m, lo, hi = _t_interval(table[table.point == name].sort_values("seed").actual)
        assert f"{name}: measured (90% CI, Student t over 3 seeds)" in text
        assert f"{m:.2f} (90% CI {lo:.2f}–{hi:.2f})" in text
    d = (table[table.point == "recommended"].set_index("seed").actual
         - table[table.point == "natural"].set_index("seed").actual)
    m, lo, hi = _t_interval(d)
    sign = lambda v: ("+" if v >= 0 else "−") + f"{abs(v):.2f}"  # noqa: E731
    assert f"{sign(m)} (90% CI {sign(lo)} to {sign(hi)})" in text
    assert "Student t over 3 seeds (paired by seed)" in text
    # every seed-mean inside its interval: no "wrong" sentence, the plain all-inside sentence instead
    assert ((per["lo"] <= per["actual"]) & (per["actual"] <= per["hi"])).all()
    assert "wrong" not in text and "Every measured value lies inside its predicted 90% interval." in text
    assert text.count("-seed2</td>") == 4     # every run listed
    rho = stats.spearmanr(per["predicted"], per["actual"])[0]
    assert read_loop(loop).spearman == pytest.approx(rho) and f"Spearman {rho:.2f}" in sec.finding


def test_python_entry_places_the_section_in_write_report(sweep_dir, tmp_path):
    loop = _loop_dir(tmp_path / "loop")
    sec = loop_section(loop)
    assert sec.id == "closed-loop" and sec.finding
    out = write_report(sweep_dir, out=tmp_path / "r.html", sections=[sec])
    html = out.read_text()
    ids = re.findall(r"<section id='([a-z-]+)'>", html)
    assert ids == ["summary", "figures", "tables", "closed-loop", "provenance"]
    rep = read_loop(loop)
    assert list(rep.to_dataframe()["point"]) == list(POINTS) and rep.covered == 4 and rep.mae == pytest.approx(0)


def test_a_loop_directory_without_its_table_is_a_one_line_error(sweep_dir, tmp_path, capsys):
    empty = tmp_path / "loop"
    empty.mkdir()
    out = tmp_path / "r.html"
    assert main(["report", str(sweep_dir), "--loop", str(empty), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and f"{empty / 'predicted_vs_actual.csv'}: no such file" in err
    assert not out.exists()
    assert main(["report", str(sweep_dir), "--loop", str(tmp_path / "nowhere"), "--out", str(out)]) == 2
    assert "does not exist" in capsys.readouterr().err and not out.exists()


@pytest.mark.parametrize("change, message", [
    (lambda t: t.drop(columns=["predicted_hi"]), "missing column(s) predicted_hi"),
    (lambda t: t.assign(actual=[np.nan] + list(t.actual[1:])), "column 'actual' must hold finite numbers, row 2"),
    (lambda t: t.assign(feasible=["maybe"] * len(t)), "column 'feasible' must hold True/False"),
    (lambda t: t.iloc[:0], "no rows"),
])
def test_a_broken_table_names_the_file_and_field(sweep_dir, tmp_path, capsys, change, message):
    loop = _loop_dir(tmp_path / "loop")
    csv = loop / "predicted_vs_actual.csv"
    change(pd.read_csv(csv)).to_csv(csv, index=False)
    assert main(["report", str(sweep_dir), "--loop", str(loop), "--out", str(tmp_path / "r.html")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and str(csv) in err and message in err
