"""examples/data_mix.ipynb runs end to end (nbclient, generated data, no network) and writes a
mixture file whose token counts match Algorithm 1 recomputed here with NumPy."""
from pathlib import Path

import numpy as np
import pytest

from lensprobe.analysis.fit import read_mixture
from lensprobe.analysis.fit.runs import read_jsonl

NOTEBOOK = Path(__file__).resolve().parents[2] / "examples" / "data_mix.ipynb"


def _algorithm1(run_dir: Path, lang: str, eta_py: float) -> float:
    """Algorithm 1's point estimate with pandas/NumPy: the per-step mean, its centred sliding mean of
    width 5, the argmax; Eq.2 on the training loss (no val.jsonl here) smoothed over 7 of its 300 logged
    points, alpha over the first 5 logged steps from 0.18% of the 3,000-step run, beta its minimum."""
    import pandas as pd

    sw = pd.read_parquet(run_dir / "results")
    sw = sw[sw.metric == "final_accuracy"]
    steps = np.sort(sw.step.unique()).astype(float)
    mean = np.array([sw[sw.step == s].value.mean() for s in steps])
    smooth = np.array([mean[max(0, i - 2): i + 3].mean() for i in range(len(mean))])
    best = steps[int(np.argmax(smooth))]
    log = read_jsonl(run_dir / "loss.jsonl")
    ls = log.step.to_numpy(float)
    loss = np.array([d[lang] for d in log.loss_by_language])
    curve = np.array([loss[max(0, i - 3): i + 4].mean() for i in range(len(loss))])
    first = np.sort(ls[ls >= 0.0018 * 3000])[:5]
    alpha, beta = loss[np.isin(ls, first)].mean(), curve.min()
    share = np.clip((np.interp(best, ls, curve) - beta) / (alpha - beta), 0, 1)
    return eta_py / share - eta_py


def test_data_mix_notebook_executes(tmp_path):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    nb = nbformat.read(NOTEBOOK, as_version=4)
    client = nbclient.NotebookClient(nb, timeout=600, kernel_name="python3",
                                     resources={"metadata": {"path": str(tmp_path)}})
    client.execute()
    work = tmp_path / "data_mix_runs"
    doc = read_mixture(work / "mixture.yaml")
    assert doc["tokens"]["python"] == 11_000_000_000
    for lang in ("php", "csharp"):
        assert doc["tokens"][lang] == round(_algorithm1(work / lang, lang, 11e9))
    alloc = read_mixture(work / "allocation.yaml")
    assert sum(alloc["tokens"].values()) == 20_000_000_000
    # the notebook printed the base-10 trend line
    outputs = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    assert "log10(x)" in outputs
