"""Snapshot and learning-rate schedules, log truncation."""
import json
import math

import pytest

from pretrain.snapshots import LRSchedule, read_log, snapshot_steps, truncate_log


def test_pythia_schedule():
    steps = snapshot_steps(2000, every=1000)
    assert steps == [0, 1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1000, 2000]
    assert snapshot_steps(1500, every=1000) == [0, 1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1000, 1500]
    assert snapshot_steps(10, every=4, log_max=2) == [0, 1, 2, 4, 8, 10]
    assert snapshot_steps(10, schedule="every", every=3) == [0, 3, 6, 9, 10]
    assert snapshot_steps(10, schedule="list", extra=[5, 99]) == [0, 5, 10]


def test_lr_schedule_matches_closed_form():
    s = LRSchedule(lr=1e-3, total_steps=110, warmup=10, kind="cosine", min_ratio=0.1)
    assert s(0) == pytest.approx(1e-4)
    assert s(9) == pytest.approx(1e-3)
    for step in (10, 35, 60, 109):
        p = (step - 10) / 100
        want = 1e-4 + 0.5 * (1e-3 - 1e-4) * (1 + math.cos(math.pi * p))
        assert s(step) == pytest.approx(want)
    assert s(110) == pytest.approx(1e-4) and s(500) == pytest.approx(1e-4)
    c = LRSchedule(lr=2e-3, total_steps=50, warmup=5, kind="constant")
    assert [c(i) for i in (0, 4, 5, 49)] == pytest.approx([4e-4, 2e-3, 2e-3, 2e-3])


def test_truncate_log_drops_later_steps_and_torn_line(tmp_path):
    path = tmp_path / "loss.jsonl"
    path.write_text("".join(json.dumps({"step": s, "loss": s / 10}) + "\n" for s in range(1, 8)) + '{"step": 8, "lo')
    assert truncate_log(path, max_step=5) == 5
    assert [r["step"] for r in read_log(path)] == [1, 2, 3, 4, 5]
    assert path.read_text().endswith("\n")
