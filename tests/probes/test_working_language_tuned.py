"""The working-language probe through the tuned lens: rows against an independent manual lens
that applies the translators to HF hidden states; over a series, translators fitted per
checkpoint, warm-started from the previous one, cached beside the sweep and reused."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

import lensprobe
from lensprobe.engine import tuned_lens as tl
from lensprobe.engine.tuned_lens import TunedLens, model_weight_hash
from lensprobe.engine.tuned_series import CHECKPOINT_FILE, HeldOutTokens, TunedLensSeries
from lensprobe.probes.registry import ProbeSpecError, make_probe
from lensprobe.probes.working_language import (OTHER, PYTHON, TARGET, TUNED_SUFFIX, WorkingLanguageProbe,
                                               metric_name, working_language)
from lensprobe.sweep import run_sweep
from lensprobe.testing import tiny_model
from lensprobe.testing.models import build_tiny_run


def _sibling(name: str):
    """The helpers of the logit-lens tests (the manual Eq.1 aggregation and the comparison)."""
    import importlib.util
    from pathlib import Path

    spec = importlib.util.spec_from_file_location(f"_lensprobe_tests_{name}", Path(__file__).with_name(f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_wl = _sibling("test_working_language")
_boosted_model, _compare, _expected = _wl._boosted_model, _wl._compare, _wl._expected

torch.set_num_threads(2)
SUITE = "go"
LIMIT = 10
IDENTS = ["=append", "nil", "&&", "true"]


def _manual_records(model, tok, suite, identifiers, lens):
    """Independent tuned lens: HF hidden_states[l] -> h + A_l h + b_l (written out here) -> final
    norm -> lm_head; layer L = the model's logits."""
    norm, head = model.transformer.ln_f, model.lm_head
    sets = suite.token_sets(tok)
    items = suite.render(seed=0, limit=LIMIT, identifiers=identifiers)
    L = model.config.num_hidden_layers
    per, collided = {}, sorted({i.identifier for i in items if sets[i.identifier].collision})
    with torch.no_grad():
        for item in items:
            s = sets[item.identifier]
            if s.collision:
                continue
            out = model(torch.tensor([tok.encode(item.prompt, add_special_tokens=False)]), output_hidden_states=True)
            cls, lpt, lpp = np.zeros(L, int), np.zeros(L), np.zeros(L)
            for layer in range(1, L + 1):
                if layer < L:
                    h = out.hidden_states[layer][0, -1]
                    h = h + lens.weight_[layer - 1] @ h + lens.bias_[layer - 1]
                    logits = head(norm(h))
                else:
                    logits = out.logits[0, -1]
                logp = torch.log_softmax(logits.double(), -1)
                top = int(logp.argmax())
                cls[layer - 1] = TARGET if top in s.target else PYTHON if top in s.reference else OTHER
                lpt[layer - 1] = float(torch.logsumexp(logp[sorted(s.target)], 0))
                lpp[layer - 1] = float(torch.logsumexp(logp[sorted(s.reference)], 0))
            per.setdefault(item.identifier, []).append((cls, lpt, lpp))
    return per, collided, L


def _strip(df: pd.DataFrame) -> pd.DataFrame:
    out = df[df.metric.str.endswith(TUNED_SUFFIX)].copy()
    out["metric"] = out.metric.str.removesuffix(TUNED_SUFFIX)
    return out


def test_tuned_probe_against_manual_translated_lens(suite_bpe):
    suite = lensprobe.load_suite(SUITE)
    model = _boosted_model("gpt2", suite_bpe, suite, seed=1)
    ids = torch.randint(3, len(suite_bpe), (4, 16), generator=torch.Generator().manual_seed(0))
    lens = TunedLens(steps=1, batch_size=4).fit(model, ids)
    gen = torch.Generator().manual_seed(5)
    lens.weight_ = 0.5 * torch.randn(lens.weight_.shape, generator=gen)  # a translator that moves the top-1
    lens.bias_ = 0.5 * torch.randn(lens.bias_.shape, generator=gen)
    logit = WorkingLanguageProbe(suite, limit=LIMIT, identifiers=IDENTS, exclude_last=1)
    tuned = WorkingLanguageProbe(suite, limit=LIMIT, identifiers=IDENTS, exclude_last=1, lens=lens)
    assert logit.input_key() == tuned.input_key() and logit.config_hash() != tuned.config_hash()
    alone = pd.DataFrame(lensprobe.run_probes(model, [WorkingLanguageProbe(suite, limit=LIMIT, identifiers=IDENTS,
                                                                           exclude_last=1)], tokenizer=suite_bpe))
    both = pd.DataFrame(lensprobe.run_probes(model, [logit, tuned], tokenizer=suite_bpe))
    tuned_rows = both[both.metric.str.endswith(TUNED_SUFFIX)]
    logit_rows = both[~both.metric.str.endswith(TUNED_SUFFIX)].reset_index(drop=True)
    # the logit rows do not change when a tuned probe shares the pass; every tuned row is suffixed
    pd.testing.assert_frame_equal(logit_rows, alone)
    assert len(tuned_rows) == len(alone)
    per, collided, L = _manual_records(model, suite_bpe, suite, IDENTS, lens)
    _compare(_strip(both), _expected(per, L, exclude_last=1), collided, require_all_classes=False)
    # the translators matter: some intermediate share differs from the logit lens
    key = ["identifier", "layer", "metric"]
    merged = _strip(both).merge(logit_rows, on=key, suffixes=("_t", "_l"))
    inter = merged[merged.metric.isin(["share_target_top1", "share_python_top1", "share_other_top1"])
                   & (merged.layer < L)]
    assert not np.allclose(inter.value_t.fillna(-1), inter.value_l.fillna(-1)), "test is too weak"
    assert metric_name("eq1_python_share", "all", lens="tuned") == "eq1_python_share_all_prompts_tuned_lens"


def test_lens_argument_is_validated(suite_bpe):
    suite = lensprobe.load_suite(SUITE)
    with pytest.raises(ValueError, match="lens must be one of 'logit', 'tuned'"):
        WorkingLanguageProbe(suite, lens="tunedd")
    with pytest.raises(ValueError, match="not fitted"):
        WorkingLanguageProbe(suite, lens=TunedLens())
    with pytest.raises(ValueError, match="are for lens='tuned'"):
        WorkingLanguageProbe(suite, lens_tokens="somewhere")
    with pytest.raises(ProbeSpecError, match="key 'lens' expects logit|tuned"):
        make_probe("working_language:suite=go,lens=tunde")
    # a lens fitted on other weights is refused, naming the weight hash
    model = _boosted_model("gpt2", suite_bpe, suite, seed=1)
    other = tiny_model("gpt2", seed=9, vocab_size=len(suite_bpe), n_positions=512)
    lens = TunedLens(steps=0).fit(other, torch.randint(3, 50, (2, 8)))
    with pytest.raises(tl.TunedLensMismatchError, match="weight hash"):
        lensprobe.run_probes(model, [WorkingLanguageProbe(suite, limit=2, lens=lens)], tokenizer=suite_bpe)
    # a single model has no run directory: the held-out tokens must be given
    with pytest.raises(ValueError, match="lens_tokens"):
        lensprobe.run_probes(model, [WorkingLanguageProbe(suite, limit=2, lens="tuned")], tokenizer=suite_bpe)


# --------------------------------------------------------------------------------------------
# over a series


def _write_token_store(path, streams, vocab):
    from pretrain.tokens import LanguageTokens, SplitStats, TokenManifest

    path.mkdir(parents=True, exist_ok=True)
    langs = {}
    for lang, arr in streams.items():
        arr = np.asarray(arr, dtype=np.uint16)
        (path / f"{lang}.bin").write_bytes(arr[::-1].copy().tobytes())
        (path / f"{lang}.val.bin").write_bytes(arr.tobytes())
        langs[lang] = LanguageTokens(lang, SplitStats(f"{lang}.bin", len(arr), 1, len(arr)),
                                     SplitStats(f"{lang}.val.bin", len(arr), 1, len(arr)))
    manifest = TokenManifest(tokenizer_hash="x", dtype="uint16", eos_token_id=2, vocab_size=vocab, languages=langs)
    (path / "manifest.json").write_text(json.dumps(manifest.to_dict()))
    return path


@pytest.fixture
def tiny_run(tmp_path, suite_bpe):
    """Three tiny GPT-2 checkpoints (steps 0, 1, 2) with the suites' tokenizer and the run's own
    token store (go and python validation tokens: 3 rows of 128 each)."""
    run = build_tiny_run(tmp_path / "toy", [0, 1, 2], tokenizer=suite_bpe, vocab_size=len(suite_bpe),
                         n_positions=512)
    rng = np.random.default_rng(0)
    _write_token_store(run / "tokens", {"go": rng.integers(3, 400, 3 * 128),
                                        "python": rng.integers(200, len(suite_bpe), 3 * 128)}, len(suite_bpe))
    return run


SPEC = "working_language:suite=go,limit=3,exclude_last=1,lens=tuned,lens_steps=4,lens_rows=2"
LOGIT = "working_language:suite=go,limit=3,exclude_last=1"


def _count_fits(monkeypatch):
    calls = []
    real = TunedLens.fit

    def fit(self, model, input_ids, **kw):
        calls.append(kw.get("init"))
        return real(self, model, input_ids, **kw)

    monkeypatch.setattr(TunedLens, "fit", fit)
    return calls


def _records(out):
    recs = {}
    for path in (out / "tuned_lens" / "toy").iterdir():
        rec = json.loads((path / CHECKPOINT_FILE).read_text())
        recs[rec["checkpoint"]] = (rec, path)
    return recs


@pytest.mark.slow
def test_sweep_fits_warm_starts_caches_and_reuses(tiny_run, tmp_path, monkeypatch):
    """~40 s under load: four sweeps. The fast test below covers the cache and the warm start too."""
    out = tmp_path / "sweep"
    calls = _count_fits(monkeypatch)
    logit = make_probe("working_language:suite=go,limit=3,exclude_last=1")
    res = run_sweep(tiny_run, [logit, make_probe(SPEC)], out_dir=out, progress=False, log=None)
    assert res.ok and len(calls) == 3
    table = res.to_dataframe()
    # both lenses side by side; the logit rows equal a logit-only sweep in memory
    only = working_language(tiny_run, "go", limit=3, exclude_last=1)
    mine = table[(table.probe == "working_language") & ~table.metric.str.endswith("_lens")]
    cols = ["checkpoint", "identifier", "layer", "metric", "value", "n"]
    key = ["checkpoint", "identifier", "layer", "metric"]
    pd.testing.assert_frame_equal(mine[cols].sort_values(key).reset_index(drop=True),
                                  only[cols].sort_values(key).reset_index(drop=True))
    assert {"eq1_python_share", "eq1_python_share_tuned_lens", "heldout_kl_tuned_lens"} <= set(table.metric)
    # one cached lens per checkpoint; each warm-started from the previous checkpoint's
    recs = _records(out)
    assert sorted(recs) == ["checkpoint-0", "checkpoint-1", "checkpoint-2"]
    assert recs["checkpoint-0"][0]["init"] is None
    for prev, cur in (("checkpoint-0", "checkpoint-1"), ("checkpoint-1", "checkpoint-2")):
        assert recs[cur][0]["init"]["weight_hash"] == recs[prev][0]["weight_hash"]
        assert recs[cur][1].name.startswith(recs[cur][0]["weight_hash"][:16] + "-")
    # the KL rows are the cached evaluation (n = held-out tokens: 2 languages x 1 row x 128)
    kl = pd.read_csv(recs["checkpoint-2"][1] / "kl.csv")
    rows = table[(table.checkpoint == "checkpoint-2") & (table.metric == "heldout_kl_tuned_lens")].sort_values("layer")
    np.testing.assert_allclose(rows.value, kl.kl_tuned)
    assert (rows.n == 256).all()

    # the results gone, the cache kept: the tuned rows come back equal, nothing refitted
    import shutil

    shutil.rmtree(out / "results")
    mtimes = {p: p.stat().st_mtime_ns for p in (out / "tuned_lens").rglob("*") if p.is_file()}
    again = run_sweep(tiny_run, [make_probe(SPEC)], out_dir=out, progress=False, log=None)
    assert again.ok and len(calls) == 3
    assert mtimes == {p: p.stat().st_mtime_ns for p in (out / "tuned_lens").rglob("*") if p.is_file()}
    tuned = table[table.metric.str.endswith("_lens")].reset_index(drop=True)
    pd.testing.assert_frame_equal(again.to_dataframe().query("probe == 'working_language'").reset_index(drop=True),
                                  tuned)

    # a changed setting fits anew (its own cache entries; the old ones stay)
    run_sweep(tiny_run, [make_probe(SPEC.replace("lens_steps=4", "lens_steps=3"))], out_dir=out, progress=False,
              log=None)
    assert len(calls) == 6
    assert len(list((out / "tuned_lens" / "toy").iterdir())) == 6


def test_resume_warm_starts_from_the_nearest_cached_checkpoint(tiny_run, tmp_path, monkeypatch):
    from lensprobe.checkpoints import CheckpointSeries

    out = tmp_path / "sweep"
    calls = _count_fits(monkeypatch)
    first = run_sweep(CheckpointSeries(tiny_run).select(steps=[0]), [make_probe(SPEC), make_probe(LOGIT)], out_dir=out,
                      progress=False, log=None)
    assert first.ok and calls == [None]
    # a new sweep (a new process would hold nothing in memory): checkpoint-0 is done, 1 and 2 are fitted,
    # checkpoint-1 warm-started from the cached lens of checkpoint-0
    rest = run_sweep(tiny_run, [make_probe(SPEC), make_probe(LOGIT)], out_dir=out, progress=False, log=None)
    assert rest.ok and rest.skipped == ["checkpoint-0"] and len(calls) == 3
    recs = _records(out)
    assert calls[1].source_ == str(recs["checkpoint-0"][1])
    assert recs["checkpoint-1"][0]["init"]["weight_hash"] == recs["checkpoint-0"][0]["weight_hash"]
    assert recs["checkpoint-2"][0]["init"]["weight_hash"] == recs["checkpoint-1"][0]["weight_hash"]
    # the results gone, the cache kept: nothing is refitted, no cached file rewritten, same rows
    import shutil

    before = rest.to_dataframe()
    shutil.rmtree(out / "results")
    mtimes = {p: p.stat().st_mtime_ns for p in (out / "tuned_lens").rglob("*") if p.is_file()}
    again = run_sweep(tiny_run, [make_probe(SPEC), make_probe(LOGIT)], out_dir=out, progress=False, log=None)
    assert again.ok and len(calls) == 3 and len(again.computed) == 3
    assert mtimes == {p: p.stat().st_mtime_ns for p in (out / "tuned_lens").rglob("*") if p.is_file()}
    pd.testing.assert_frame_equal(again.to_dataframe(), before)
    _check_presentation(before, out)


def _check_presentation(table, out):
    """The report's tables are the sweep's rows; the report gets the section; the figure draws."""
    from lensprobe.present.report import write_report
    from lensprobe.present.tuned import lens_kl_table, lens_layer_table, lens_share_table, plot_lenses

    suite = table[(table.probe == "working_language") & table.identifier.isna() & table.layer.isna()]
    shares = lens_share_table(table).set_index("step")
    for lens, metric in (("logit", "eq1_python_share"), ("tuned", "eq1_python_share_tuned_lens")):
        rows = suite[suite.metric == metric].set_index("step")
        np.testing.assert_allclose(shares[lens].to_numpy(float), rows.value.reindex(shares.index).to_numpy(float))
        assert (shares[f"{lens}_n"] == rows.n.reindex(shares.index).astype(float)).all()
    layers = lens_layer_table(table)
    last = table[(table.step == table.step.max()) & table.identifier.isna()]
    for r in layers.itertuples():
        suffix = "" if r.lens == "logit" else TUNED_SUFFIX
        want = last[(last.metric == "share_python_top1" + suffix) & (last.layer == r.layer)].value.iloc[0]
        assert r.python == pytest.approx(want, nan_ok=True)
    kl = lens_kl_table(table)
    assert len(kl) == 3 * 2 and (kl.n_tokens == 256).all()
    plot_lenses(table)
    html = write_report(out).read_text()
    assert "id='tuned-lens'" in html and "Logit lens and tuned lens" in html


def test_series_with_your_own_ids(tiny_run, tmp_path):
    """A TunedLensSeries over the user's ids: in memory, warm start along the series; cold when asked."""
    from lensprobe.checkpoints import CheckpointSeries

    gen = torch.Generator().manual_seed(0)
    tokens = HeldOutTokens(torch.randint(3, 700, (4, 32), generator=gen), torch.randint(3, 700, (2, 32), generator=gen))
    warm = TunedLensSeries(tokens, settings={"steps": 3, "batch_size": 2})
    cold = TunedLensSeries(tokens, settings={"steps": 3, "batch_size": 2}, warm_start=False)
    assert warm.settings_hash != cold.settings_hash
    got = []
    for info, model in CheckpointSeries(tiny_run).iter_models():
        got.append((warm.lens_for(model, run="toy", checkpoint=info.name, step=info.step),
                    cold.lens_for(model, run="toy", checkpoint=info.name, step=info.step)))
    assert got[0][0].init is None and got[1][0].init["weight_hash"] == got[0][0].lens.weight_hash_
    assert all(c.init is None for _, c in got) and warm.fits == cold.fits == 3
    # the first checkpoint has no earlier one: warm and cold agree there exactly
    assert torch.equal(got[0][0].lens.weight_, got[0][1].lens.weight_)
    assert not torch.equal(got[1][0].lens.weight_, got[1][1].lens.weight_)
    with pytest.raises(ValueError, match="tokens, 384 needed"):
        HeldOutTokens.from_streams({"go": np.arange(100)}, seq_len=128, fit_rows=2, eval_rows=1)


def test_lens_cli_both_lenses_and_cache(tiny_run, tmp_path, monkeypatch, capsys):
    """``lensprobe lens --lens logit tuned``: both metric families in one table, translators cached
    beside it (the run's own validation tokens), a second invocation fits nothing."""
    from lensprobe.cli import main

    rng = np.random.default_rng(1)  # the CLI's default rows: 32 fit + 16 held out per language
    _write_token_store(tiny_run / "tokens", {"go": rng.integers(3, 400, 48 * 128),
                                             "python": rng.integers(200, 700, 48 * 128)}, 800)
    calls = _count_fits(monkeypatch)
    out = tmp_path / "wl.parquet"
    args = ["lens", str(tiny_run), "--suite", "go", "--limit", "2", "--exclude-last", "1", "--out", str(out),
            "--lens", "logit", "tuned", "--lens-steps", "2", "--quiet"]
    assert main(args) == 0
    df = pd.read_parquet(out)
    assert {"eq1_python_share", "eq1_python_share_tuned_lens", "heldout_kl_logit_lens"} <= set(df.metric)
    assert "eq1_python_share_tuned_lens" in capsys.readouterr().out
    cache = tmp_path / "wl.parquet.tuned_lens" / "toy"
    assert len(list(cache.iterdir())) == 3 and len(calls) == 3
    assert main(args) == 0 and len(calls) == 3
    pd.testing.assert_frame_equal(pd.read_parquet(out), df)
    assert main(["lens", str(tiny_run), "--suite", "go", "--out", str(out), "--lens-steps", "3"]) == 2
    assert "are for --lens tuned" in capsys.readouterr().err


def test_unusable_cache_entry_is_refitted(tiny_run, tmp_path):
    from lensprobe.engine.adapters import load_model

    gen = torch.Generator().manual_seed(0)
    tokens = HeldOutTokens(torch.randint(3, 700, (4, 16), generator=gen), torch.randint(3, 700, (2, 16), generator=gen))
    lm = load_model(tiny_run / "checkpoint-1")
    first = TunedLensSeries(tokens, cache_dir=tmp_path, settings={"steps": 2}).lens_for(lm, run="toy", step=1)
    (first.path / "kl.csv").write_text("nonsense\n")
    again = TunedLensSeries(tokens, cache_dir=tmp_path, settings={"steps": 2})
    got = again.lens_for(lm, run="toy", step=1)
    assert got.fitted_now and again.fits == 1 and got.path == first.path
    assert list(pd.read_csv(first.path / "kl.csv").layer) == [1, 2]
    third = TunedLensSeries(tokens, cache_dir=tmp_path, settings={"steps": 2})
    assert not third.lens_for(lm, run="toy", step=1).fitted_now and third.loads == 1
    assert torch.equal(third.lens_for(lm, run="toy", step=1).lens.weight_, got.lens.weight_)


def test_a_killed_fits_temporaries_are_removed_under_the_entry_lock(tiny_run, tmp_path):
    """A fit killed inside its atomic write leaves ``.<entry>.<random>.tmp`` (and ``.<entry>.old``) beside
    the cache entry; the next fit of that entry, holding the entry's lock, removes them, and nothing
    hidden is left once it has written the entry (the lock file goes with its release)."""
    from lensprobe.engine.adapters import load_model

    gen = torch.Generator().manual_seed(0)
    tokens = HeldOutTokens(torch.randint(3, 700, (4, 16), generator=gen), torch.randint(3, 700, (2, 16), generator=gen))
    lm = load_model(tiny_run / "checkpoint-1")
    series = TunedLensSeries(tokens, cache_dir=tmp_path, settings={"steps": 2})
    entry = series.path("toy", model_weight_hash(lm.model))
    entry.parent.mkdir(parents=True, exist_ok=True)
    stale = entry.parent / f".{entry.name}.k1ll3d_x.tmp"
    (stale / "sub").mkdir(parents=True)
    (entry.parent / f".{entry.name}.old").write_text("half")
    other = entry.parent / ".someone-else.k1ll3d_x.tmp"  # not this entry's: left alone
    other.mkdir()
    got = series.lens_for(lm, run="toy", step=1)
    assert got.fitted_now and got.path == entry and (entry / "kl.csv").is_file()
    assert sorted(p.name for p in entry.parent.iterdir() if p.name.startswith(".")) == [other.name]
