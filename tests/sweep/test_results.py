"""Results on disk lose nothing: one file per checkpoint and probe configuration (a second sweep adds),
two sweeps at once share the work, run-level rows follow the run's logs, the earlier layout is read and
converted without recomputing (docs/sweep.md, "What a sweep guarantees")."""
from __future__ import annotations

import io
import json
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from lensprobe.checkpoints import CheckpointSeries
from lensprobe.sweep import read_sweep, run_sweep
from lensprobe.testing import build_tiny_run
from lensprobe.testing.probes import LastTokenNorm, ParamSum

QUIET = dict(progress=False, log=None)


class Tagged(LastTokenNorm):
    """LastTokenNorm whose rows carry a tag in ``language``: configurations whose rows do not overlap."""

    def __init__(self, tag: str, **kw):
        super().__init__(**kw)
        self.tag = tag

    def config(self):
        return {**super().config(), "tag": self.tag}

    def finalize(self):
        return [dict(r, language=self.tag) for r in super().finalize()]


def test_a_second_sweep_with_other_probes_adds_to_the_directory(run_dir, tmp_path):
    joint = run_sweep(run_dir, [LastTokenNorm(), ParamSum()], out_dir=tmp_path / "joint", **QUIET).to_dataframe()
    out = tmp_path / "out"
    first = run_sweep(run_dir, [LastTokenNorm()], out_dir=out, **QUIET)
    second = run_sweep(run_dir, [ParamSum()], out_dir=out, **QUIET)
    assert len(first.computed) == len(second.computed) == 5
    pd.testing.assert_frame_equal(read_sweep(out), joint)
    record = json.loads((out / "sweep.json").read_text())
    assert {p["name"] for p in record["probes"]} == {"last_norm", "param_sum"}
    assert len(record["sweeps"]) == 2 and record["runs"][run_dir.name]["path"] == str(run_dir)
    # the same probes again: nothing to do, and sweep.json keeps one entry per probe set
    again = run_sweep(run_dir, [ParamSum(), LastTokenNorm()], out_dir=out, **QUIET)
    assert again.computed == [] and len(again.skipped) == 5
    assert len(json.loads((out / "sweep.json").read_text())["sweeps"]) == 3


def test_settings_whose_rows_overlap_replace_the_earlier_ones_others_add(run_dir, tmp_path):
    out = tmp_path / "out"
    run_sweep(run_dir, [Tagged("python")], out_dir=out, **QUIET)
    run_sweep(run_dir, [Tagged("php")], out_dir=out, **QUIET)              # rows differ: both kept
    df = read_sweep(out)
    assert sorted(df.loc[df["probe"] == "last_norm", "language"].unique()) == ["php", "python"]
    norm = lambda d, lang: d[(d["probe"] == "last_norm") & (d["language"] == lang)].reset_index(drop=True)
    before = norm(df, "python")
    run_sweep(run_dir, [Tagged("php", n_batches=1)], out_dir=out, **QUIET)  # overlaps php: replaces it
    after = read_sweep(out)
    assert not after.duplicated(subset=["checkpoint", "probe", "language", "layer", "metric"]).any()
    pd.testing.assert_frame_equal(norm(after, "python"), before)
    one_batch = run_sweep(run_dir, [Tagged("php", n_batches=1)], log_rows=False, **QUIET).to_dataframe()
    pd.testing.assert_frame_equal(norm(after, "php"), one_batch)
    assert len(list((out / "results").glob("*__last_norm-*.parquet"))) == 10  # 5 checkpoints x 2 settings


SCRIPT = textwrap.dedent("""
    import json, os, sys
    import torch; torch.set_num_threads(1)
    from lensprobe.sweep import run_sweep
    from lensprobe.testing.probes import LastTokenNorm, ParamSum
    run, out, which, log = sys.argv[1:5]
    probes = {{"both": [LastTokenNorm(sleep={sleep}), ParamSum()], "norm": [LastTokenNorm(sleep={sleep})],
              "sum": [ParamSum()]}}[which]
    def seen(info, rows):
        with open(log, "a") as fh:
            fh.write(json.dumps([os.getpid(), info.name, sorted(set(rows["probe"]) - {{"log"}})]) + "\\n")
    res = run_sweep(run, probes, out_dir=out, progress=False, log=None, on_checkpoint=seen)
    print(json.dumps({{"computed": res.computed, "skipped": res.skipped, "ok": res.ok}}))
""")


def _sweeps_at_once(run_dir, out, which, log, sleep=0.3):
    code = SCRIPT.format(sleep=sleep)
    procs = [subprocess.Popen([sys.executable, "-c", code, str(run_dir), str(out), w, str(log)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for w in which]
    reports = []
    for p in procs:
        stdout, stderr = p.communicate(timeout=600)
        assert p.returncode == 0, stderr[-3000:]
        reports.append(json.loads(stdout.strip().splitlines()[-1]))
    return reports


def test_the_same_sweep_twice_at_once_computes_each_unit_once(run_dir, tmp_path):
    reference = run_sweep(run_dir, [LastTokenNorm(), ParamSum()], out_dir=tmp_path / "ref", **QUIET).to_dataframe()
    out, log = tmp_path / "out", tmp_path / "computed.jsonl"
    a, b = _sweeps_at_once(run_dir, out, ["both", "both"], log)
    done = [(name, probe) for _pid, name, probes in map(json.loads, log.read_text().splitlines()) for probe in probes]
    assert sorted(done) == sorted({(f"checkpoint-{s}", p) for s in (0, 1, 2, 4, 8)
                                   for p in ("last_norm", "param_sum")})  # every unit once, none twice
    for report in (a, b):  # each ends with the whole table: its own units, and the other's (waited for)
        assert report["ok"] and sorted(report["computed"] + report["skipped"]) == sorted(
            f"checkpoint-{s}" for s in (0, 1, 2, 4, 8))
    assert a["computed"] and b["computed"]  # the work was shared
    pd.testing.assert_frame_equal(read_sweep(out), reference)
    assert not [p.name for p in (out / "results").iterdir() if p.name.startswith(".")]  # no lock, no temporary


def test_two_sweeps_of_different_probes_at_once_both_land(run_dir, tmp_path):
    reference = run_sweep(run_dir, [LastTokenNorm(), ParamSum()], out_dir=tmp_path / "ref", **QUIET).to_dataframe()
    out = tmp_path / "out"
    _sweeps_at_once(run_dir, out, ["norm", "sum"], tmp_path / "computed.jsonl", sleep=0.1)
    pd.testing.assert_frame_equal(read_sweep(out), reference)
    assert {p["name"] for p in json.loads((out / "sweep.json").read_text())["probes"]} == {"last_norm", "param_sum"}


def _val(path: Path, steps, tokens_per_step=100):
    with open(path, "a") as fh:
        for s in steps:
            for i, lang in enumerate(("python", "php")):
                fh.write(json.dumps({"step": s, "tokens": s * tokens_per_step, "language": lang,
                                     "loss": 4.0 / (1 + s) + i, "bpb": 1.0 / (1 + s)}) + "\n")


def _val_losses(df):
    rows = df[(df["metric"] == "val_loss") & (df["language"] == "php")]
    return dict(zip(rows["step"], rows["value"]))


def test_validation_rows_written_after_the_sweep_are_in_the_table(tmp_path):
    run = build_tiny_run(tmp_path / "run", [0, 1, 2])
    _val(run / "val.jsonl", [0])          # the trainer has validated step 0 only when the sweep starts
    out = tmp_path / "out"
    first = run_sweep(run, [ParamSum()], out_dir=out, **QUIET)
    assert len(first.computed) == 3 and _val_losses(read_sweep(out)) == {0: 5.0}
    _val(run / "val.jsonl", [1, 2])       # ... and steps 1 and 2 once the sweep had seen them
    again = run_sweep(run, [ParamSum()], out_dir=out, **QUIET)
    assert again.computed == [] and len(again.skipped) == 3
    assert _val_losses(read_sweep(out)) == {s: 4.0 / (1 + s) + 1 for s in (0, 1, 2)}

    # during one sweep: a validation row appears after the sweep saw its checkpoint
    run2 = build_tiny_run(tmp_path / "run2", [0, 1, 2])
    written = run_sweep(run2, [ParamSum()], out_dir=tmp_path / "out2", progress=False, log=None,
                        on_checkpoint=lambda info, rows: _val(run2 / "val.jsonl", [info.step]))
    assert _val_losses(written.to_dataframe()) == {s: 4.0 / (1 + s) + 1 for s in (0, 1, 2)}


def test_tokens_from_a_loss_log_written_later_are_stamped_on_rerun(tmp_path):
    run = build_tiny_run(tmp_path / "run", [0, 1, 2])
    meta = run / "checkpoint-2" / "checkpoint.json"
    meta.write_text(json.dumps({k: v for k, v in json.loads(meta.read_text()).items() if k != "tokens"}))
    log = run / "loss.jsonl"
    log.write_text("".join(line + "\n" for line in log.read_text().splitlines()[:2]))  # steps 0 and 1 only
    out = tmp_path / "out"
    run_sweep(run, [ParamSum()], out_dir=out, **QUIET)
    assert read_sweep(out).set_index(["step", "probe"]).loc[(2, "param_sum"), "tokens"] is pd.NA
    with open(log, "a") as fh:
        fh.write(json.dumps({"step": 2, "loss": 5.0 / 3, "tokens": 200}) + "\n")
    assert run_sweep(run, [ParamSum()], out_dir=out, **QUIET).computed == []
    df = read_sweep(out)
    assert df.loc[df["step"] == 2, "tokens"].tolist() == [200] * int((df["step"] == 2).sum())
    pd.testing.assert_frame_equal(df, run_sweep(run, [ParamSum()], **QUIET).to_dataframe())


def _legacy_layout(out: Path, run_dir: Path, probes) -> None:
    """The layout before one file per probe: OUT/results/<run>__<checkpoint>.parquet holding every probe's
    rows, keyed by a hash over all probe configurations (as lensprobe wrote it until then)."""
    import hashlib

    table = run_sweep(run_dir, probes, **QUIET).to_dataframe()
    series = CheckpointSeries(run_dir)
    for info in series:
        blob = json.dumps({"weights": info.weight_hash, "probes": sorted(p.config_hash() for p in probes)},
                          sort_keys=True)
        t = pa.Table.from_pandas(table[table["checkpoint"] == info.name], preserve_index=False)
        meta = dict(t.schema.metadata or {})
        meta[b"lensprobe_key"] = hashlib.sha256(blob.encode()).hexdigest()[:20].encode()
        meta[b"lensprobe_meta"] = json.dumps({"path": str(info.path), "weight_hash": info.weight_hash,
                                              "probes": {p.name: p.config() for p in probes}}).encode()
        buf = io.BytesIO()
        pq.write_table(t.replace_schema_metadata(meta), buf)
        (out / "results").mkdir(parents=True, exist_ok=True)
        (out / "results" / f"{series.run}__{info.name}.parquet").write_bytes(buf.getvalue())
    (out / "sweep.json").write_text(json.dumps({"run": series.run, "probes": [
        {"name": p.name, "config": p.config(), "hash": p.config_hash()} for p in probes],
        "checkpoints": [c.name for c in series], "world_size": 1}))


def test_the_earlier_layout_is_read_and_converted_without_recomputing(run_dir, tmp_path):
    probes = [LastTokenNorm(), ParamSum()]
    out = tmp_path / "old"
    _legacy_layout(out, run_dir, probes)
    want = run_sweep(run_dir, probes, out_dir=tmp_path / "new", **QUIET).to_dataframe()
    pd.testing.assert_frame_equal(read_sweep(out), want)            # read as it is
    res = run_sweep(run_dir, probes, out_dir=out, **QUIET)           # converted, nothing recomputed
    assert res.computed == [] and len(res.skipped) == 5
    assert not list((out / "results").glob(f"{run_dir.name}__checkpoint-?.parquet"))
    pd.testing.assert_frame_equal(read_sweep(out), want)
    record = json.loads((out / "sweep.json").read_text())
    assert len(record["sweeps"]) == 1 and record["sweeps"][0]["times"] == 2  # the earlier sweep.json kept
    # a second probe set into the converted directory adds, as in any other
    shutil.rmtree(tmp_path / "new")
    extra = run_sweep(run_dir, [Tagged("go")], out_dir=out, **QUIET)
    assert len(extra.computed) == 5 and set(read_sweep(out)["probe"]) == {"last_norm", "param_sum", "log"}
