"""`lensprobe pretrain` end to end: a built-in recipe with overrides, a mixture file, bad input."""
import json
from pathlib import Path

import pytest
import yaml

from lensprobe.cli import main
from pretrain.snapshots import list_checkpoints, read_log

pytestmark = pytest.mark.usefixtures("one_thread")   # training sets threads=1; the fixture restores the count

TINY = ["--set", "model.n_layer=1", "--set", "model.n_embd=32", "--set", "model.n_head=2",
        "--set", "data.context=16", "--set", "optim.batch_size=4", "--set", "optim.warmup=2",
        "--set", "tokenizer.vocab_size=384", "--set", "tokenizer.sample_bytes_per_language=50000",
        "--set", "data.validation_tokens=512", "--set", "snapshots.every=4", "--set", "snapshots.log_max=2",
        "--set", "threads=1"]


def test_mixture_recipe_with_mixture_file(tmp_path, capsys):
    mix = tmp_path / "mix.yaml"
    mix.write_text("tokens: {python: 1020, php: 340}\nsource: test\n")       # 60 + 20 windows of 17 tokens
    out = tmp_path / "mix"
    rc = main(["pretrain", "mixture", "--mixture", str(mix), "--out", str(out),
               "--set", "data.languages=[python, php]", *TINY])
    assert rc == 0
    recorded = yaml.safe_load((out / "config.yaml").read_text())
    assert recorded["data"]["mixture"] == str(mix) and recorded["model"]["n_layer"] == 1
    assert "--mixture" in (out / "command.txt").read_text()
    ckpts = list_checkpoints(out)
    assert sorted(ckpts) == [0, 1, 2, 4, 8, 12, 16, 20]        # 80 windows / batch 4 = 20 steps
    final = json.loads((ckpts[20] / "checkpoint.json").read_text())
    assert final["tokens_by_language"] == {"python": 1020, "php": 340}       # the budgets, exactly
    assert final["recipe"] == "mixture" and final["run"] == "mixture"
    assert len(read_log(out / "loss.jsonl")) == 20
    assert {r["language"] for r in read_log(out / "val.jsonl")} == {"python", "php"}
    # the same command again: nothing left to do, nothing rewritten
    before = (out / "loss.jsonl").read_text()
    assert main(["pretrain", "mixture", "--mixture", str(mix), "--out", str(out),
                 "--set", "data.languages=[python, php]", *TINY]) == 0
    assert (out / "loss.jsonl").read_text() == before
    # a change that matters is refused with the field's name
    capsys.readouterr()
    assert main(["pretrain", "mixture", "--mixture", str(mix), "--out", str(out),
                 "--set", "data.languages=[python, php]", *TINY, "--set", "optim.clip=0.5"]) == 2
    assert "optim.clip: differs from the run recorded" in capsys.readouterr().err


@pytest.mark.parametrize("args, message", [
    (["python-mono", "--set", "optim.lr=fast"], "optim.lr: expected a float, got 'fast'"),
    (["python-mono", "--set", "optim.lrr=1"], "optim.lrr: unknown key"),
    (["python-mono", "--set", "data.corpus=/no/such/dir"], "data.corpus: expected 'embedded'"),
    (["no-such-recipe"], "recipe: unknown recipe 'no-such-recipe'"),
    (["continual"], "model.n_layer: required"),
])
def test_bad_input_exits_2_naming_the_field(tmp_path, capsys, args, message):
    out = tmp_path / "run"
    assert main(["pretrain", *args, "--out", str(out)]) == 2
    assert message in capsys.readouterr().err
    assert not out.exists()                                  # nothing was started


def test_list_and_print_config(capsys):
    assert main(["pretrain", "--list"]) == 0
    listed = capsys.readouterr().out
    assert all(name in listed for name in ("python-mono", "continual", "mixture"))
    assert main(["pretrain", "python-mono", "--print-config", "--set", "model.n_layer=2"]) == 0
    cfg = yaml.safe_load(capsys.readouterr().out)
    assert cfg["model"]["n_layer"] == 2 and cfg["model"]["n_embd"] == 128 and cfg["run"]["recipe"] == "python-mono"


def test_progress_bar_on_stderr_unless_quiet(tmp_path, capsys):
    """Training shows a tqdm bar over the steps with the loss, tokens/s and an ETA on stderr (nothing on
    stdout); --quiet shows neither the bar nor the messages; both runs train the same steps."""
    mix = tmp_path / "mix.yaml"
    mix.write_text("tokens: {python: 340, php: 340}\n")                      # 40 windows / batch 4 = 10 steps
    args = ["pretrain", "mixture", "--mixture", str(mix), "--set", "data.languages=[python, php]", *TINY]
    assert main([*args, "--out", str(tmp_path / "a")]) == 0
    loud = capsys.readouterr()
    bar = loud.err.replace("\r", "\n").splitlines()
    assert any(line.startswith("train mixture: 100%") and "10/10" in line and "loss " in line and "tok/s" in line
               for line in bar), loud.err[-2000:]
    assert any("<" in line and "step/s" in line or "s/step" in line for line in bar)  # elapsed<remaining, rate
    assert "training the tokenizer" in loud.err and loud.out == ""
    assert main([*args, "--out", str(tmp_path / "b"), "--quiet"]) == 0
    quiet = capsys.readouterr()
    assert quiet.err == "" and quiet.out == ""
    assert read_log(tmp_path / "a" / "loss.jsonl") and len(read_log(tmp_path / "b" / "loss.jsonl")) == 10
