"""The report reads in a minute: a summary first (findings with their intervals and baselines, numbers
formatted), then figures, then tables, added sections, and provenance with the raw data collapsed."""
from __future__ import annotations

import html as htmllib
import re
from html.parser import HTMLParser

import numpy as np
import pytest

from lensprobe.present.curves import transfer, wilson_interval
from lensprobe.present.report import CONFIDENCE_SENTENCE, ReportSection, fmt_interval, fmt_number, write_report
from lensprobe.testing.tables import PAPER_STEPS, make_paper_table, paper_acc, paper_kept, paper_prior, paper_share


class _Text(HTMLParser):
    """Visible text per top-level section, and whether it sits inside <details>."""

    def __init__(self):
        super().__init__()
        self.section, self.details, self.out = None, 0, {}
        self.open_details_text: list[str] = []

    def handle_starttag(self, tag, attrs):
        if tag in ("td", "th", "tr", "li", "p", "h2", "h3") and self.section and not self.details:
            self.out.setdefault(self.section, []).append(" ")  # cells and blocks are separate words
        if tag == "section":
            self.section = dict(attrs).get("id")
        elif tag == "details":
            self.details += 1

    def handle_endtag(self, tag):
        if tag == "details":
            self.details -= 1

    def handle_data(self, data):
        if self.section and not self.details:
            self.out.setdefault(self.section, []).append(data)


def _sections(page: str) -> dict[str, str]:
    p = _Text()
    p.feed(page)
    return {k: re.sub(r"\s+", " ", "".join(v)) for k, v in p.out.items()}


@pytest.fixture(scope="module")
def page(paper_run):
    return (paper_run / "report" / "index.html").read_text()


def test_summary_figures_tables_in_that_order(page):
    ids = re.findall(r"<section id='([a-z_-]+)'>", page)
    assert ids == ["summary", "figures", "tables", "loop", "provenance"]
    summary = page[page.index("id='summary'"):page.index("id='figures'")]
    assert "<img" not in summary and "<table" not in summary
    assert page.index("data:image/png") > page.index("id='figures'") and page.index("<table") > page.index("id='tables'")


def test_summary_states_the_findings_with_intervals_and_baselines(page):
    text = htmllib.unescape(_sections(page)["summary"])
    table = make_paper_table()
    # transfer: the split's value and interval, control, prior, the item-bootstrap differences and the verdict
    t = transfer(table, language="php")
    po, ctl = paper_acc("php", "python_only", 158), paper_acc("php", "control", 158)
    assert t.value == pytest.approx(po) and t.control == pytest.approx(ctl)
    assert f"Python-only concepts at step 158: {fmt_interval(po, po - 0.08, po + 0.08)}" in text
    assert f"control split {fmt_interval(ctl, ctl - 0.08, ctl + 0.08)}" in text
    pr = paper_prior("python_only", 158)
    assert f"body prior {fmt_interval(pr, pr - 0.02, pr + 0.02)}" in text
    assert "transfer claimed" in text and "bootstrap over 6 items" in text
    # per-item rows are the split's value +- 0.1 (three each): the differences' centre is exact
    assert t.diff_control[0] == pytest.approx(po - ctl) and t.diff_prior[0] == pytest.approx(po - pr)
    # the working language's drift: first and last finite points, their Wilson intervals and n
    first = next(s for s in PAPER_STEPS if paper_kept(s))
    for s in (first, 158):
        lo, hi = wilson_interval(paper_share(s), paper_kept(s))
        assert f"{fmt_interval(paper_share(s), lo, hi)}, n = {paper_kept(s)}" in text
    assert f"no prompt kept at 4 of {len(PAPER_STEPS)} checkpoints" in text
    # LAPE against the null band, the stages with their confidence and what it means, the recommendation
    assert "php 18 → 6 neurons (below the null band at 8 of 12 checkpoints" in text
    assert "transition steps 60–120, confidence 0.58 — weak" in text and CONFIDENCE_SENTENCE in text
    assert ("100,538,065 PHP tokens for 5,999,151 Python tokens (90% CI 57,820,304 to 187,519,282); Python-system "
            "share 0.056 (90% CI 0.031–0.094) at the best checkpoint, step 150") in text
    assert "Closed loop. the loop's one-sentence finding" in text  # an added section's finding


def test_numbers_are_formatted_and_raw_data_collapsed(page):
    visible = _sections(page)
    shown = " ".join(v for k, v in visible.items() if k != "provenance")
    assert not re.search(r"\d\.\d{4,}", shown)          # no 100538064.68432139, no 0.0123456789
    assert not re.search(r"\d{5,}", shown) and "6,118,656" in shown  # big numbers have thousands separators
    assert "<NA>" not in page and "nan" not in shown.lower().split()
    for raw in ("eq1_python_share", "line_acc", "n_neurons", "null_n_neurons"):
        assert raw not in shown, raw                     # raw metric names only in the collapsed raw data
    assert "eq1_python_share" in page.split("id='provenance'")[1]
    prov = page.split("id='provenance'")[1]
    for title in ("Run settings and timings", "Software versions", "Probes and metrics in the table",
                  "Every whole-model number at the last checkpoint", "Stage evidence"):
        assert re.search(rf"<details><summary>{title}", prov), title
    assert "lensprobe demo --quick --out x" in visible["provenance"]  # the commands are not hidden
    assert "{" not in visible["summary"]  # no JSON dump


def _table_after(page: str, heading: str) -> list[list[str]]:
    """The cells of the first table after ``<h3>heading``, row by row (header row first)."""
    part = page[page.index(f"<h3>{heading}"):]
    part = part[:part.index("</table>")]
    return [[htmllib.unescape(c) for c in re.findall(r"<t[hd][^>]*>(.*?)</t[hd]>", row)]
            for row in re.findall(r"<tr>(.*?)</tr>", part)]


def test_tables_hold_the_numbers_per_checkpoint(page):
    wl = _table_after(page, "Working language per checkpoint")
    assert wl[0] == ["language", "step", "tokens", "Eq. 1 Python share (95% CI)", "prompts kept"]
    lo, hi = wilson_interval(paper_share(60), paper_kept(60))
    assert ["php", "60", f"{6_118_656 + 4096 * 60:,}", fmt_interval(paper_share(60), lo, hi), f"{paper_kept(60)} of 92"] in wl
    assert ["php", "0", "6,118,656", "—", "0 of 92"] in wl
    assert len(wl) == 1 + len(PAPER_STEPS)
    stages = _table_after(page, "php")  # the stage table under the Stages heading
    assert stages[1:] == [["translation", "0", "60", "0.91"], ["transition", "60", "120", "0.58"],
                          ["stabilization", "120", "158", "0.80"]]
    perf = _table_after(page, "Performance per split")
    po = paper_acc("php", "python_only", 158)
    assert ["php", "python_only", fmt_interval(po, po - 0.08, po + 0.08),
            fmt_interval(paper_prior("python_only", 158), paper_prior("python_only", 158) - 0.02,
                         paper_prior("python_only", 158) + 0.02), "6"] in perf
    lape = _table_after(page, "LAPE neurons per checkpoint")
    assert lape[0][0] == "step" and lape[-1][0] == "158" and "6 · 15.5 (14–17) · below" in lape[-1]


def test_format_helpers():
    assert fmt_number(100538064.68432139) == "100,538,065"
    assert fmt_number(0.123456) == "0.12" and fmt_number(158.0, digits=0) == "158"
    assert fmt_number(float("nan")) == "—" and fmt_number(float("inf")) == "∞" and fmt_number(None) == "—"
    assert fmt_interval(0.5, 0.4, 0.6) == "0.50 (95% CI 0.40–0.60)" and fmt_interval(0.5, np.nan, 0.6) == "0.50"


def test_no_recommendation_says_why(paper_run, tmp_path):
    out = tmp_path / "r.html"
    write_report(paper_run, out=out, extra={"recommendation": {"error": "the Python share is 0: no finite budget"}})
    text = htmllib.unescape(_sections(out.read_text())["summary"])
    assert "Recommendation. None: the Python share is 0: no finite budget" in text


def test_sections_and_inputs_are_checked(paper_run, report_inputs, tmp_path):
    loop = report_inputs.loop
    with pytest.raises(ValueError, match="unique"):
        write_report(paper_run, out=tmp_path / "x.html", sections=[loop, loop])
    with pytest.raises(ValueError, match="alphanumeric"):
        ReportSection(id="a b", title="t", html="")
    with pytest.raises(ValueError, match="no sweep results"):
        write_report(tmp_path)
    assert not (tmp_path / "report").exists()
