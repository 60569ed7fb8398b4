"""`lensprobe babel`: splits -> suite -> validate round trip, show, eval on tiny checkpoints, bad input."""
import json

import pandas as pd
import pytest

from lensprobe.babel.evaluation import extract_body, score_lines
from lensprobe.babel.suite import babel_lens_items
from lensprobe.cli import main
from lensprobe.suites import load_suite
from lensprobe.babel.corpus import BabelCorpus
from lensprobe.babel.splits import SPLITS, BabelSplits, make_splits
from lensprobe.babel.concepts import render

SIZES = dict(n_shared=5, n_python_only=4, n_target_only=3, n_control=4)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    """A split manifest (via the CLI), a trained tokenizer, a tiny checkpoint and a two-checkpoint run."""
    from lensprobe.testing import build_tiny_run, tiny_model
    from pretrain.tokenizer import train_tokenizer

    root = tmp_path_factory.mktemp("babel_cli")
    assert main(["babel", "splits", "--seed", "4", "--targets", "php,go", "--n-shared", "5", "--n-python-only", "4",
                 "--n-target-only", "3", "--n-control", "4", "--out", str(root / "splits.json")]) == 0
    splits = BabelSplits.load(root / "splits.json")
    tok = train_tokenizer(BabelCorpus(splits, stage="continual", target="php"), languages=["python", "php"],
                          vocab_size=500, sample_bytes_per_language=30_000, out_dir=root / "tok")
    model = tiny_model("gpt2", vocab_size=len(tok), seed=2)
    model.save_pretrained(root / "ckpt")
    tok.save_pretrained(root / "ckpt")
    build_tiny_run(root / "run", [0, 3], tokenizer=tok, vocab_size=len(tok))
    return root


def test_splits_manifest_is_the_seeded_splits(workdir):
    again = make_splits(seed=4, targets=("php", "go"), **SIZES)
    assert json.loads((workdir / "splits.json").read_text()) == json.loads(json.dumps(again.manifest()))


def test_suite_round_trip_validates_with_the_probes_command(workdir, capsys):
    out = workdir / "babel_php.yaml"
    assert main(["babel", "suite", "--splits", str(workdir / "splits.json"), "--target", "php",
                 "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    splits = BabelSplits.load(workdir / "splits.json")
    expected = babel_lens_items(splits, target="php")
    assert load_suite(out).identifier_ids == list(expected.counts())
    for ident, n in expected.counts().items():
        assert f"  {ident}\t{n}\n" in printed
    n_maxmin = sum(1 for s in SPLITS for c in splits.split(s, target="php" if s == "target_only" else None)
                   if c.terminal.kind in ("max", "min"))
    assert printed.count("same identifier as Python") == len(expected.skipped)
    assert expected.n_skipped() == n_maxmin
    assert main(["probes", "validate", str(out)]) == 0
    assert capsys.readouterr().out.strip() == f"{out.absolute()}: OK"  # messages name the full path
    assert main(["probes", "validate", str(out), "--tokenizer", str(workdir / "tok")]) == 0
    # go: only strings.Count differs from Python (len is len; sums and extrema are loops): one identifier per
    # split that has character-counting concepts; a split without any is an error
    go = workdir / "babel_go.yaml"
    assert main(["babel", "suite", "--splits", str(workdir / "splits.json"), "--target", "go", "--out", str(go)]) == 0
    have = {s: [c.name for c in splits.split(s, target="go" if s == "target_only" else None)
                if c.terminal.kind == "count_char"] for s in SPLITS}
    expected_ids = [f"{s}:Count:count" for s in SPLITS if have[s]]
    assert expected_ids and load_suite(go).identifier_ids == expected_ids
    for s in SPLITS:
        if have[s]:
            assert [t.id for t in load_suite(go).identifier(f"{s}:Count:count").templates] == have[s]
    empty = next(s for s in SPLITS if not have[s])
    capsys.readouterr()
    assert main(["babel", "suite", "--splits", str(workdir / "splits.json"), "--target", "go", "--split", empty,
                 "--out", str(workdir / "none.yaml")]) == 2
    assert "every concept was skipped" in capsys.readouterr().err and not (workdir / "none.yaml").exists()


def test_show_prints_canonical_renderings_of_one_split(workdir, capsys):
    splits = BabelSplits.load(workdir / "splits.json")
    assert main(["babel", "show", "--splits", str(workdir / "splits.json"), "--split", "python_only",
                 "--language", "php,cpp"]) == 0
    out = capsys.readouterr().out
    for c in splits.python_only:
        assert render(c, "php").text in out and render(c, "cpp").text in out
        assert render(c, "python").text not in out
    for c in splits.shared:
        assert c.name not in out


def test_eval_single_checkpoint_rows_per_split_and_language(workdir, capsys):
    out, items = workdir / "eval.csv", workdir / "items.csv"
    assert main(["babel", "eval", str(workdir / "ckpt"), "--splits", str(workdir / "splits.json"),
                 "--languages", "python,php", "--no-execute", "--max-new-tokens", "12", "--n-boot", "50",
                 "--out", str(out), "--items", str(items)]) == 0
    df = pd.read_csv(out)
    sizes = {"shared": 5, "python_only": 4, "target_only": 3, "control": 4}
    acc = df[df["metric"] == "line_acc"]
    assert set(zip(acc["split"], acc["language"])) == {(s, lang) for s in SPLITS for lang in ("python", "php")}
    assert len(acc) == 8
    assert acc["value"].between(0, 1).all() and (acc["lo"] <= acc["value"]).all() and (acc["value"] <= acc["hi"]).all()
    assert all(acc["n"] == acc["split"].map(sizes))
    assert "pass@1" not in set(df["metric"])
    # line accuracy recomputed from the completions against the canonical bodies
    splits = BabelSplits.load(workdir / "splits.json")
    by_name = {c.name: c for c in splits.all_concepts()}
    it = pd.read_csv(items, keep_default_na=False)
    it["again"] = [score_lines(extract_body(r.language, r.completion), render(by_name[r.concept], r.language).body)[0]
                   for r in it.itertuples()]
    means = it.groupby(["split", "language"])["again"].mean()
    for r in acc.itertuples():
        assert r.value == pytest.approx(means[(r.split, r.language)])


def test_eval_run_dir_sweeps_every_checkpoint(workdir):
    out = workdir / "run_eval.parquet"
    args = ["babel", "eval", str(workdir / "run"), "--splits", str(workdir / "splits.json"), "--languages", "php",
            "--split", "python_only,control", "--no-execute", "--max-new-tokens", "6", "--n-boot", "50",
            "--out", str(out)]
    assert main(args) == 0
    df = pd.read_parquet(out)
    acc = df[df["metric"] == "line_acc"]
    assert sorted(acc["step"].unique()) == [0, 3]
    assert set(zip(acc["step"], acc["split"])) == {(s, sp) for s in (0, 3) for sp in ("python_only", "control")}
    assert set(acc["language"]) == {"php"} and acc["value"].between(0, 1).all()
    assert all(acc["n"] == acc["split"].map({"python_only": 4, "control": 4}))
    assert (workdir / "run_eval_sweep" / "results").is_dir()
    assert main(args) == 0  # resumes: nothing recomputed, same table
    pd.testing.assert_frame_equal(pd.read_parquet(out), df)


@pytest.mark.parametrize("argv, message", [
    (["suite", "--splits", "{w}/missing.json", "--out", "{w}/x.yaml"], "missing.json does not exist"),
    (["suite", "--splits", "{w}/splits.json", "--split", "nope", "--out", "{w}/x.yaml"], "--split: unknown value 'nope'"),
    (["suite", "--splits", "{w}/splits.json", "--target", "rust", "--out", "{w}/x.yaml"], "--target: expected one of"),
    (["suite", "--splits", "{w}/splits.json", "--out", "{w}/x.txt"], "--out: must end in .yaml"),
    (["splits", "--targets", "php,rust", "--out", "{w}/s.json"], "--targets: unknown value 'rust'"),
    (["splits", "--n-cases", "1", "--out", "{w}/s.json"], "--n-cases: must be >= 2"),
    (["show", "--splits", "{w}/splits.json", "--language", "klingon"], "--language: unknown value 'klingon'"),
    (["show", "--splits", "{w}/splits.json", "--concept", "nosuch"], "--concept: no concept named ['nosuch']"),
    (["show", "--splits", "{w}/splits.json", "--target", "cpp"], "--target: 'cpp' is not a target of the splits"),
    (["eval", "{w}/nowhere", "--splits", "{w}/splits.json", "--out", "{w}/t.csv"], "nowhere does not exist"),
    (["eval", "{w}/ckpt", "--splits", "{w}/splits.json", "--languages", "python,rust", "--out", "{w}/t.csv"],
     "--languages: unknown value 'rust'"),
    (["eval", "{w}/ckpt", "--splits", "{w}/splits.json", "--out", "{w}/t.txt"], "--out: must end in .csv or .parquet"),
    (["eval", "{w}/run", "--splits", "{w}/splits.json", "--items", "{w}/i.csv", "--out", "{w}/t.csv"],
     "--items: per-item tables are written for a single checkpoint only"),
])
def test_bad_input_exits_2_naming_the_field(workdir, capsys, argv, message):
    bad = workdir / "bad.json"
    bad.write_text("{}")
    assert main(["babel", *[a.format(w=workdir) for a in argv]]) == 2
    assert message in capsys.readouterr().err
    assert main(["babel", "suite", "--splits", str(bad), "--out", str(workdir / "x.yaml")]) == 2
    assert "not a Babel split manifest" in capsys.readouterr().err
