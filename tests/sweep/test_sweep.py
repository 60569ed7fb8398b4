"""The sweep runner: long-format table, in memory and on disk, resumability under SIGKILL, skipping, sharding."""
from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest
import torch
from transformers import AutoModelForCausalLM

from lensprobe.sweep import probe_model, read_sweep, run_sweep
from lensprobe.table import SWEEP_COLUMNS
from lensprobe.testing.probes import LastTokenNorm, ParamSum


def test_table_is_long_format_and_matches_an_independent_forward(run_dir, tmp_path):
    res = run_sweep(run_dir, [LastTokenNorm(), ParamSum()], out_dir=tmp_path, progress=False, log=None)
    assert len(res.computed) == 5 and not res.failed
    df = read_sweep(tmp_path)
    assert tuple(df.columns) == SWEEP_COLUMNS
    assert set(df["probe"]) == {"last_norm", "param_sum", "log"}
    for step in (0, 4):
        model = AutoModelForCausalLM.from_pretrained(run_dir / f"checkpoint-{step}").eval()
        g = torch.Generator().manual_seed(0)
        norms = {}
        with torch.no_grad():
            for _ in range(2):
                ids = torch.randint(4, 101, (3, 7), generator=g)
                hs = model(ids, output_hidden_states=True).hidden_states
                for layer in range(1, len(hs) - 1):  # hs[-1] is normalised by ln_f: not a raw block output
                    norms[layer] = norms.get(layer, 0.0) + float(hs[layer][:, -1].norm(dim=-1).sum())
        got = df[(df.step == step) & (df.metric == "last_norm")].set_index("layer")["value"]
        for layer, s in norms.items():
            assert got[layer] == pytest.approx(s / 6, rel=1e-5)
        psum = sum(float(p.detach().double().sum()) for p in model.parameters())
        assert df[(df.step == step) & (df.metric == "param_sum")]["value"].item() == pytest.approx(psum, rel=1e-6)
        # log rows joined from loss.jsonl (loss = 5 / (1 + step))
        tl = df[(df.step == step) & (df.metric == "train_loss") & df.language.isna()]["value"].item()
        assert tl == pytest.approx(5.0 / (1 + step))
    assert df[df.metric == "param_sum"]["tokens"].tolist() == [0, 300, 600, 1200, 2400]


def test_rerun_skips_done_checkpoints_and_recomputes_on_config_change(run_dir, tmp_path):
    run_sweep(run_dir, [LastTokenNorm()], out_dir=tmp_path, progress=False, log=None)
    before = read_sweep(tmp_path)
    again = run_sweep(run_dir, [LastTokenNorm()], out_dir=tmp_path, progress=False, log=None)
    assert again.computed == [] and len(again.skipped) == 5
    pd.testing.assert_frame_equal(read_sweep(tmp_path), before)
    changed = run_sweep(run_dir, [LastTokenNorm(n_batches=1)], out_dir=tmp_path, progress=False, log=None)
    assert len(changed.computed) == 5
    assert (read_sweep(tmp_path).groupby("checkpoint").size() == before.groupby("checkpoint").size()).all()


def test_failed_checkpoint_is_recorded_and_retried(run_dir, tmp_path):
    marker = tmp_path / "fail"
    marker.write_text("x")
    res = run_sweep(run_dir, [ParamSum(fail_marker=str(marker))], out_dir=tmp_path / "out", progress=False, log=None)
    assert len(res.failed) == 5 and "planted failure" in res.failed[0][1]
    marker.unlink()
    res = run_sweep(run_dir, [ParamSum(fail_marker=str(marker))], out_dir=tmp_path / "out", progress=False, log=None)
    assert len(res.computed) == 5


def test_shards_partition_the_checkpoints(run_dir, tmp_path):
    a = run_sweep(run_dir, [ParamSum()], out_dir=tmp_path, rank=0, world_size=2, progress=False, log=None)
    b = run_sweep(run_dir, [ParamSum()], out_dir=tmp_path, rank=1, world_size=2, progress=False, log=None)
    assert set(a.computed).isdisjoint(b.computed)
    assert len(a.computed) + len(b.computed) == 5
    assert read_sweep(tmp_path)["checkpoint"].nunique() == 5
    with pytest.raises(ValueError, match="rank"):
        run_sweep(run_dir, [ParamSum()], out_dir=tmp_path, rank=2, world_size=2, progress=False, log=None)


SCRIPT = """
import json
import torch; torch.set_num_threads(1)
from lensprobe.sweep import run_sweep
from lensprobe.testing.probes import LastTokenNorm, ParamSum
res = run_sweep({run!r}, [LastTokenNorm(sleep={sleep}), ParamSum()], out_dir={out!r}, progress=False, log=None)
print(json.dumps({{"computed": res.computed, "skipped": res.skipped}}))
"""


def _sweep_process(run_dir, out, sleep):
    code = SCRIPT.format(run=str(run_dir), out=str(out), sleep=sleep)
    return subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_sigkill_at_random_moments_then_rerun_gives_the_uninterrupted_table(run_dir, tmp_path):
    reference = tmp_path / "ref"
    run_sweep(run_dir, [LastTokenNorm(), ParamSum()], out_dir=reference, progress=False, log=None)
    out = tmp_path / "killed"
    rng = random.Random(0)
    record = out / "sweep.json"
    for _ in range(3):
        started = record.stat().st_mtime_ns if record.exists() else None
        proc = _sweep_process(run_dir, out, sleep=0.3)
        deadline = time.time() + 120  # the kill lands while it sweeps: after it recorded itself in sweep.json
        while time.time() < deadline and proc.poll() is None and \
                (not record.exists() or record.stat().st_mtime_ns == started):
            time.sleep(0.02)
        time.sleep(rng.uniform(0.2, 2.5))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        # only complete files are visible: every parquet there must be readable
        for f in (out / "results").glob("*.parquet"):
            pd.read_parquet(f)
    from lensprobe.results import read_unit_info

    units = [read_unit_info(p) for p in (out / "results").glob("*.parquet")]
    names = lambda probe: {u.checkpoint for u in units if u is not None and u.probe == probe}  # noqa: E731
    done_before = names("last_norm") & names("param_sum")    # every probe of the checkpoint written
    proc = _sweep_process(run_dir, out, sleep=0.0)
    stdout, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 0, stderr[-2000:]
    report = json.loads(stdout.strip().splitlines()[-1])
    assert done_before.isdisjoint(report["computed"])  # finished checkpoints were not recomputed
    assert set(report["skipped"]) == done_before
    got, want = read_sweep(out), read_sweep(reference)
    assert not got.duplicated(subset=["checkpoint", "probe", "layer", "metric", "language"]).any()
    pd.testing.assert_frame_equal(got, want)
    # what the kills left (half-written temporaries, lock files) is gone once the sweep is complete
    assert [p.name for p in (out / "results").iterdir() if p.name.startswith(".")] == []


def test_in_memory_sweep_returns_the_table_the_disk_sweep_writes(run_dir, tmp_path, monkeypatch):
    disk = run_sweep(run_dir, [LastTokenNorm(), ParamSum()], out_dir=tmp_path / "out", progress=False, log=None)
    seen = []
    # the launcher's shard applies to a sweep on disk only: in memory every checkpoint is computed
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    mem = run_sweep(run_dir, [LastTokenNorm(), ParamSum()], progress=False, log=None,
                    on_checkpoint=lambda info, rows: seen.append((info.name, rows)))
    assert mem.out_dir is None and len(mem.computed) == 5 and not mem.skipped
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # nothing written in memory
    pd.testing.assert_frame_equal(mem.to_dataframe(), disk.to_dataframe())  # dtypes and row order included
    assert [name for name, _ in seen] == [f"checkpoint-{s}" for s in (0, 1, 2, 4, 8)]
    pd.testing.assert_frame_equal(pd.concat([rows for _, rows in seen]).sort_values(["step", "probe", "metric", "layer"])
                                  .reset_index(drop=True),
                                  mem.to_dataframe().sort_values(["step", "probe", "metric", "layer"])
                                  .reset_index(drop=True))
    sharded = run_sweep(run_dir, [ParamSum()], out_dir=tmp_path / "shard", progress=False, log=None)
    assert sharded.computed == ["checkpoint-1", "checkpoint-4"]
    no_logs = run_sweep(run_dir, [ParamSum()], log_rows=False, progress=False, log=None).to_dataframe()
    assert set(no_logs["probe"]) == {"param_sum"} and len(no_logs) == 5


def test_probe_model_is_one_checkpoint_of_the_sweep(run_dir):
    swept = run_sweep(run_dir, [LastTokenNorm(), ParamSum()], log_rows=False, progress=False, log=None).to_dataframe()
    model = AutoModelForCausalLM.from_pretrained(run_dir / "checkpoint-4").eval()
    one = probe_model(model, [LastTokenNorm(), ParamSum()], run=run_dir.name, checkpoint="checkpoint-4", step=4,
                      tokens=1200)
    pd.testing.assert_frame_equal(one, swept[swept["step"] == 4].reset_index(drop=True), rtol=1e-6)
    bare = probe_model(model, [ParamSum()])
    assert tuple(bare.columns) == SWEEP_COLUMNS and bare[["run", "checkpoint", "step", "tokens"]].isna().all().all()
    with pytest.raises(ValueError, match="at least one probe"):
        probe_model(model, [])
    with pytest.raises(TypeError, match="not a lensprobe Probe"):
        run_sweep(run_dir, [object()])
