"""``lensprobe plot`` + ``lensprobe report``: files written, a self-contained HTML report, one-line errors."""
from __future__ import annotations

import base64
import json
import re

import pytest

from lensprobe.cli import main
from lensprobe.testing.tables import write_sweep


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory):
    out = write_sweep(tmp_path_factory.mktemp("sweep"))
    assert main(["stages", str(out), "--metric", "line_acc", "--probe", "babel", "--identifier", "python_only",
                 "--n-boot", "10"]) == 0
    assert main(["plot", str(out)]) == 0
    (out / "commands.json").write_text(json.dumps([["lensprobe", "sweep", "runs/x"]]))
    assert main(["report", str(out)]) == 0
    return out


def test_plot_writes_every_supported_figure_as_png_and_svg(pipeline):
    names = sorted(p.name for p in (pipeline / "figures").iterdir())
    stems = ["heatmap_php", "lape_counts", "lape_layers", "performance", "working_language"]
    assert names == sorted(f"{s}.{ext}" for s in stems for ext in ("png", "svg"))
    for stem in stems:
        assert (pipeline / "figures" / f"{stem}.png").read_bytes()[:4] == b"\x89PNG"


def test_report_is_self_contained_and_complete(pipeline):
    html = (pipeline / "report" / "index.html").read_text()
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", html, flags=re.I)
    assert "<link" not in html and "<script" not in html
    uris = re.findall(r"src='data:image/png;base64,([A-Za-z0-9+/=]+)'", html)
    figures = sorted((pipeline / "figures").glob("*.png"))
    assert len(uris) == len(figures) == 5
    assert sorted(base64.b64decode(u) for u in uris) == sorted(p.read_bytes() for p in figures)
    stages = json.loads((pipeline / "stages.json").read_text())
    for st in stages["php"]["stages"]:  # the stage table lists every detected stage with its steps
        assert re.search(rf"<td>{st['name']}</td>\s*<td class='num'>{st['start_step']:,.0f}</td>\s*"
                         rf"<td class='num'>{st['end_step']:,.0f}</td>", html)
    from importlib.metadata import version

    for pkg in ("torch", "pandas", "lensprobe"):
        assert re.search(rf"<td>{pkg}</td>\s*<td>{re.escape(version(pkg))}</td>", html)
    assert "runs/x" in html.split("<h2>Provenance</h2>")[1]  # commands.json is shown


def test_plot_errors(tmp_path, capsys, pipeline):
    assert main(["plot", str(pipeline), "--figures", "performance,bogus"]) == 2
    assert "unknown figure(s) bogus" in capsys.readouterr().err
    assert main(["plot", str(pipeline), "--figures", "performance", "--metric", "pass@1"]) == 2
    assert "no rows for figure(s) performance" in capsys.readouterr().err
    assert main(["plot", str(pipeline), "--figures", "working_language", "--out-dir", str(tmp_path / "f")]) == 0
    assert sorted(p.name for p in (tmp_path / "f").iterdir()) == ["working_language.png", "working_language.svg"]


def test_plot_refuses_a_language_the_table_lacks(pipeline, tmp_path, capsys):
    out_dir = tmp_path / "figs"
    assert main(["plot", str(pipeline), "--language", "klingon", "--out-dir", str(out_dir)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "--language klingon" in err and "languages: php, python" in err
    assert not out_dir.exists()  # nothing drawn
    assert main(["plot", str(pipeline), "--language", "php", "--figures", "performance,heatmap",
                 "--out-dir", str(out_dir)]) == 0
    assert sorted(p.stem for p in out_dir.glob("*.png")) == ["heatmap_php", "performance"]


def test_report_of_a_folder_without_sweep_results_is_an_error(tmp_path, capsys):
    assert main(["report", str(tmp_path / "missing")]) == 2
    assert "does not exist" in capsys.readouterr().err
    empty = tmp_path / "empty"
    (empty / "figures").mkdir(parents=True)
    assert main(["report", str(empty)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "no sweep results" in err and str(empty) in err
    assert not (empty / "report").exists()  # no empty report written


def test_report_out_option(pipeline, tmp_path):
    assert main(["report", str(pipeline), "--out", str(tmp_path / "r.html"), "--title", "My run"]) == 0
    assert "<title>My run</title>" in (tmp_path / "r.html").read_text()
