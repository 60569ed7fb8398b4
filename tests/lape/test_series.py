"""lape_over_series (the LAPE probe through the sweep), the `lensprobe lape` CLI and the plots on a tiny
three-checkpoint run."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from lensprobe.lape import LapeInputs
from lensprobe.probes.lape import LapeProbe, lape_over_series
from lensprobe.table import SWEEP_COLUMNS, sort_table, stamp_rows, to_table

SETTINGS = dict(languages=["python", "php"], tokens_per_language=300, seq_len=50, n_groups=4, null_permutations=2)


@pytest.fixture(scope="module")
def table(run_dir):
    run, store = run_dir
    seen = []
    df = lape_over_series(str(run), str(store), on_checkpoint=lambda c, r, rows: seen.append((c.name, r)),
                          **SETTINGS)
    return df, seen


def test_table_shape_and_fixed_count(table, run_dir):
    df, seen = table
    assert list(df.columns) == list(SWEEP_COLUMNS)
    assert (df.probe == "lape").all() and df.identifier.isna().all()
    assert sorted(df.step.unique()) == [0, 10, 20] and (df.run == "toy-run").all()
    n_sel = df[(df.metric == "n_selected")]
    assert (n_sel.value == round(0.01 * 3 * 128)).all()
    per_layer = df[(df.metric == "n_neurons") & df.layer.notna()]
    whole = df[(df.metric == "n_neurons") & df.layer.isna()]
    merged = per_layer.groupby(["checkpoint", "language"]).value.sum()
    pd.testing.assert_series_equal(merged, whole.set_index(["checkpoint", "language"]).value.sort_index(),
                                   check_names=False)
    ref = df[df.metric == "jaccard_vs_reference"]
    assert set(ref.checkpoint) == {"checkpoint-10", "checkpoint-20"}
    assert [name for name, _ in seen] == ["checkpoint-0", "checkpoint-10", "checkpoint-20"]
    first, last = seen[0][1], seen[2][1]
    expect = last.jaccard(first)
    got = ref[ref.checkpoint == "checkpoint-20"].set_index("language").value
    assert got.loc["python"] == pytest.approx(expect["python"], nan_ok=True)


def test_rows_equal_an_independent_single_model_run(table, run_dir):
    from transformers import AutoModelForCausalLM

    df, seen = table
    run, store = run_dir
    model = AutoModelForCausalLM.from_pretrained(run / "checkpoint-10").eval()
    inputs = LapeInputs.from_token_store(store, ["python", "php"], seq_len=50, tokens_per_language=300)
    probe = LapeProbe(inputs, n_groups=4, null_permutations=2, reference=seen[0][1])
    rows = sort_table(to_table(stamp_rows(probe.run(model), run="toy-run", checkpoint="checkpoint-10", step=10)))
    mine = df[df.checkpoint == "checkpoint-10"].reset_index(drop=True)
    pd.testing.assert_frame_equal(mine, rows)
    np.testing.assert_array_equal(probe.result.mask, seen[1][1].mask)
    # the first checkpoint is the reference: no jaccard rows; a fixed reference gives them everywhere
    fixed = lape_over_series(str(run), str(store), reference=seen[2][1], **SETTINGS)
    jac = fixed[(fixed.metric == "jaccard_vs_reference") & fixed.language.isna()].set_index("checkpoint").value
    assert jac["checkpoint-20"] == 1.0 and jac["checkpoint-0"] == pytest.approx(seen[0][1].jaccard(seen[2][1])["*"])
    none = lape_over_series(str(run), str(store), reference=None, **SETTINGS)
    pd.testing.assert_frame_equal(none, df[df.metric != "jaccard_vs_reference"].reset_index(drop=True))


def test_resume_recomputes_only_missing_checkpoints_with_the_same_reference(table, run_dir, tmp_path):
    df, _ = table
    run, store = run_dir
    out = tmp_path / "sweep"
    done = []
    first = lape_over_series(str(run), str(store), out_dir=out, on_checkpoint=lambda c, r, rows: done.append(c.name),
                             **SETTINGS)
    pd.testing.assert_frame_equal(first, df)  # on disk = in memory
    assert done == ["checkpoint-0", "checkpoint-10", "checkpoint-20"]
    for f in (out / "results").glob("toy-run__checkpoint-10__lape-*.parquet"):  # its result file
        f.unlink()
    done.clear()
    again = lape_over_series(str(run), str(store), out_dir=out, on_checkpoint=lambda c, r, rows: done.append(c.name),
                             **SETTINGS)
    # checkpoint-0 is done (its selection is recomputed in memory as the reference), checkpoint-20 too
    assert done == ["checkpoint-10"]
    pd.testing.assert_frame_equal(again, df)


def test_cli_writes_resumes_and_rejects_bad_input(table, run_dir, tmp_path, capsys):
    from lensprobe.cli import main

    df, seen = table
    run, store = run_dir
    out = tmp_path / "lape.parquet"
    argv = ["lape", str(run), "--languages", "python", "php", "--tokens", str(store), "--tokens-per-language", "300",
            "--seq-len", "50", "--groups", "4", "--null-permutations", "2", "--out", str(out),
            "--masks-dir", str(tmp_path / "masks")]
    assert main(argv) == 0
    written = pd.read_parquet(out)
    pd.testing.assert_frame_equal(written[["checkpoint", "metric", "value"]], df[["checkpoint", "metric", "value"]])
    saved = np.load(tmp_path / "masks" / "checkpoint-20.npz")
    np.testing.assert_array_equal(saved["mask"], seen[2][1].mask)
    assert list(saved["languages"]) == ["python", "php"]
    capsys.readouterr()
    assert main(argv) == 0  # resume: nothing left to do
    assert "all 3 checkpoint(s) already in" in capsys.readouterr().out
    pd.testing.assert_frame_equal(pd.read_parquet(out), written)
    # other settings: every checkpoint is recomputed, the table holds the new rows only
    assert main(argv[:-4] + ["--groups", "2", "--out", str(out)]) == 0
    assert "already in" not in capsys.readouterr().out
    regrouped = lape_over_series(str(run), str(store), **{**SETTINGS, "n_groups": 2})
    pd.testing.assert_frame_equal(pd.read_parquet(out), regrouped)
    bad = ["lape", str(run), "--languages", "python", "go", "--tokens", str(store), "--out", str(tmp_path / "x.csv")]
    assert main(bad) == 2
    assert "language 'go'" in capsys.readouterr().err
    assert main(["lape", str(run), "--languages", "python", "--input", "python", "--out", str(tmp_path / "y.csv")]) == 2
    assert "LANG=SOURCE" in capsys.readouterr().err


def test_plots_show_the_table(table):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from lensprobe.present.lape_figures import plot_lape_counts, plot_lape_gap, plot_lape_layer_heatmap, plot_lape_layers

    df, seen = table
    fig = plot_lape_counts(df)
    ax = fig.axes[0]
    lines = [ln for ln in ax.get_lines() if len(ln.get_xdata())]
    assert len(lines) == 4  # 2 languages x (true, null)
    python = df[(df.metric == "n_neurons") & df.layer.isna() & (df.language == "python")].sort_values("step")
    assert any(np.array_equal(ln.get_ydata(), python.value.to_numpy()) for ln in lines)
    fig2 = plot_lape_layers(df)
    heights = sorted(p.get_height() for p in fig2.axes[0].patches if p.get_width() > 0)
    expect = sorted(seen[2][1].counts().n_neurons.astype(float))
    assert heights[-len(expect):] == expect[-len(heights):] and sum(heights) == sum(expect)
    fig3 = plot_lape_layer_heatmap(df, language="php")
    mesh = fig3.axes[0].collections[0]
    php = df[(df.metric == "n_neurons") & df.layer.notna() & (df.language == "php")]
    grid = php.pivot_table(index="layer", columns="step", values="value").sort_index(ascending=False)
    np.testing.assert_array_equal(np.asarray(mesh.get_array()).reshape(3, 3), grid.to_numpy())
    fig4 = plot_lape_gap(df)
    assert len(fig4.axes[0].get_lines()) >= 4
    with pytest.raises(ValueError, match="language 'go'"):
        plot_lape_layer_heatmap(df, language="go")
    from lensprobe.present import figures as plot  # the package-level re-exports delegate here

    again = plot.plot_lape_counts(df).axes[0]
    assert len([ln for ln in again.get_lines() if len(ln.get_xdata())]) == 4
    assert plot.plot_lape_layers(df).axes[0].get_xlabel() == "layer (block)"
    plt.close("all")


def test_lape_probe_in_a_sweep(table, run_dir, tmp_path):
    from lensprobe.sweep import read_sweep, run_sweep

    df, _ = table
    run, store = run_dir
    inputs = LapeInputs.from_token_store(store, ["python", "php"], seq_len=50, tokens_per_language=300)
    probe = LapeProbe(inputs, n_groups=4, null_permutations=2)
    # LapeProbe reads token ids: the toy run has no tokenizer files and needs none
    run_sweep(str(run), [probe], out_dir=tmp_path / "sweep", progress=False, log=lambda *a: None)
    swept = read_sweep(tmp_path / "sweep")
    swept = swept[swept.metric == "n_neurons"].sort_values(["step", "language", "layer"], na_position="first")
    mine = df[df.metric == "n_neurons"].sort_values(["step", "language", "layer"], na_position="first")
    np.testing.assert_array_equal(swept.value.to_numpy(), mine.value.to_numpy())
