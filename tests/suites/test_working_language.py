"""Working-language probe (Eq.1) against an independent manual logit lens."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch

import lensprobe
from lensprobe.probes.working_language import (OTHER, PYTHON, TARGET, WorkingLanguageProbe, _ItemRecord,
                                               default_exclude_last, working_language)
from lensprobe.testing import tiny_model

torch.set_num_threads(2)
SUITE = "go"
LIMIT = 10


def _final_norm_and_head(model):
    if model.config.model_type == "gpt2":
        return model.transformer.ln_f, model.lm_head
    return model.model.norm, model.lm_head


def _boosted_model(model_type, tok, suite, seed=0, boost=120.0):
    """Tiny random model whose unembedding rows of the suite's tokens are scaled up, so the lens'
    top-1 often lands in a target or Python set (a random model would almost never)."""
    kw = dict(n_positions=512) if model_type == "gpt2" else dict(max_position_embeddings=512)
    model = tiny_model(model_type, seed=seed, vocab_size=len(tok), **kw)
    sets = suite.token_sets(tok)
    ids = sorted({t for s in sets.values() for t in s.target | s.reference})
    with torch.no_grad():
        model.lm_head.weight[ids] *= boost
    return model


IDENTS = ["=append", "nil", "&&", "true"]


def _manual_records(model, tok, suite):
    """Independent lens: HF hidden_states[1..L-1] -> final norm -> lm_head; layer L = the model's logits."""
    norm, head = _final_norm_and_head(model)
    sets = suite.token_sets(tok)
    items = suite.render(seed=0, limit=LIMIT, identifiers=IDENTS)
    L = model.config.num_hidden_layers
    per: dict[str, list[tuple[np.ndarray, np.ndarray, np.ndarray]]] = {}
    collided = sorted({i.identifier for i in items if sets[i.identifier].collision})
    with torch.no_grad():
        for item in items:
            s = sets[item.identifier]
            if s.collision:
                continue
            ids = tok.encode(item.prompt, add_special_tokens=False)
            out = model(torch.tensor([ids]), output_hidden_states=True)
            cls, lpt, lpp = np.zeros(L, int), np.zeros(L), np.zeros(L)
            for layer in range(1, L + 1):
                logits = head(norm(out.hidden_states[layer][0, -1])) if layer < L else out.logits[0, -1]
                logp = torch.log_softmax(logits.double(), -1)
                top = int(logp.argmax())
                cls[layer - 1] = TARGET if top in s.target else PYTHON if top in s.reference else OTHER
                lpt[layer - 1] = float(torch.logsumexp(logp[sorted(s.target)], 0))
                lpp[layer - 1] = float(torch.logsumexp(logp[sorted(s.reference)], 0))
            per.setdefault(item.identifier, []).append((cls, lpt, lpp))
    return per, collided, L


def _expected(per, L, *, exclude_last, filter_generated=False):
    expected = {}
    for ident, recs in per.items():
        kept = [r for r in recs if r[0][L - 1] == TARGET] if filter_generated else recs
        e = {"n_prompts": len(recs), "n_kept": len(kept),
             "final_accuracy": np.mean([r[0][L - 1] == TARGET for r in recs])}
        if kept:
            cls = np.stack([r[0] for r in kept])
            lpt = np.stack([r[1] for r in kept])
            lpp = np.stack([r[2] for r in kept])
            used = cls[:, : L - exclude_last]
            n_t, n_p = (used == TARGET).sum(), (used == PYTHON).sum()
            e["eq1_python_share"] = n_p / (n_t + n_p) if n_t + n_p else math.nan
            e["eq1_target_share"] = n_t / (n_t + n_p) if n_t + n_p else math.nan
            mt, mp = np.exp(lpt[:, : L - exclude_last]).sum(), np.exp(lpp[:, : L - exclude_last]).sum()
            e["eq1_mass_python_share"] = mp / (mt + mp)
            for layer in range(1, L + 1):
                e[("share_target_top1", layer)] = (cls[:, layer - 1] == TARGET).mean()
                e[("share_python_top1", layer)] = (cls[:, layer - 1] == PYTHON).mean()
                e[("share_other_top1", layer)] = (cls[:, layer - 1] == OTHER).mean()
                e[("logp_target", layer)] = lpt[:, layer - 1].mean()
                e[("logp_python", layer)] = lpp[:, layer - 1].mean()
        expected[ident] = e
    return expected


def _lookup(df, ident, metric, layer=None):
    who = df.identifier.isna() if ident is None else df.identifier == ident
    sel = df[who & (df.metric == metric)]
    sel = sel[sel.layer.isna()] if layer is None else sel[sel.layer == layer]
    assert len(sel) == 1, (ident, metric, layer, len(sel))
    return float(sel.value.iloc[0]), int(sel.n.iloc[0])


def _compare(df, expected, collided, *, require_all_classes=True):
    seen_classes = set()
    for ident, e in expected.items():
        for key, want in e.items():
            metric, layer = key if isinstance(key, tuple) else (key, None)
            got, _ = _lookup(df, ident, metric, layer)
            if isinstance(want, float) and math.isnan(want):
                assert math.isnan(got), (ident, key)
            else:
                assert got == pytest.approx(float(want), abs=2e-5), (ident, key, got, want)
            if metric.startswith("share_") and got > 0:
                seen_classes.add(metric)
    if require_all_classes:
        assert seen_classes == {"share_target_top1", "share_python_top1", "share_other_top1"}, \
            "test is too weak: some top-1 class never occurs"
    assert _lookup(df, None, "n_excluded_collisions")[0] == len(collided)
    for ident in collided:
        assert _lookup(df, ident, "excluded_collision")[0] == 1.0
        assert not (df[(df.identifier == ident)].metric == "share_target_top1").any()


@pytest.mark.parametrize("model_type,seed", [("gpt2", 3), ("llama", 0)])
def test_probe_matches_manual_lens(bpe_tokenizer, model_type, seed):
    suite = lensprobe.load_suite(SUITE)
    # seeds chosen so that all three top-1 classes occur (and, for gpt2, the filter keeps some prompts)
    model = _boosted_model(model_type, bpe_tokenizer, suite, seed=seed)
    # both variants in one engine pass (equal input keys share the forward passes)
    plain = WorkingLanguageProbe(suite, limit=LIMIT, identifiers=IDENTS, exclude_last=1)
    filtered = WorkingLanguageProbe(suite, limit=LIMIT, identifiers=IDENTS, exclude_last=1, filter_generated=True)
    assert plain.input_key() == filtered.input_key()
    rows = lensprobe.run_probes(model, [plain, filtered], tokenizer=bpe_tokenizer)
    half = len(rows) // 2
    df, df_f = pd.DataFrame(rows[:half]), pd.DataFrame(rows[half:])
    assert set(df.language) == {"go"} and set(df.probe) == {"working_language"}
    per, collided, L = _manual_records(model, bpe_tokenizer, suite)
    assert collided == ["=append"]  # Go append vs Python .append share `append`
    _compare(df, _expected(per, L, exclude_last=1), collided)
    assert _lookup(df, None, "exclude_last")[0] == 1

    # the paper's filter: keep prompts whose final layer's top-1 is a target token
    expected = _expected(per, L, exclude_last=1, filter_generated=True)
    kept = {i: e["n_kept"] for i, e in expected.items()}
    if model_type == "gpt2":
        assert 0 < sum(kept.values()) < sum(e["n_prompts"] for e in expected.values())
    for ident, n in kept.items():
        assert _lookup(df_f, ident, "n_kept") == (n, LIMIT)
        assert _lookup(df_f, ident, "final_accuracy")[0] == pytest.approx(n / LIMIT)
    assert _lookup(df_f, None, "n_kept")[0] == sum(kept.values())
    _compare(df_f, expected, collided, require_all_classes=False)


def test_working_language_table_columns(bpe_tokenizer):
    suite = lensprobe.load_suite("php")
    model = _boosted_model("gpt2", bpe_tokenizer, suite)
    df = working_language(model, suite, tokenizer=bpe_tokenizer, limit=LIMIT, identifiers=["count"])
    assert list(df.columns) == ["checkpoint", "step", "language", "identifier", "layer", "metric", "value", "n"]
    assert set(df.language) == {"php"}
    assert _lookup(df, "count", "n_prompts") == (LIMIT, LIMIT)
    # default exclude_last for a 3-layer model is 1
    assert _lookup(df, None, "exclude_last") == (1, 3)


def test_padding_side_and_batch_size_do_not_change_rows(bpe_tokenizer):
    suite = lensprobe.load_suite(SUITE)
    model = _boosted_model("llama", bpe_tokenizer, suite, seed=1)

    def run(**kw):
        probe = WorkingLanguageProbe(suite, limit=LIMIT, identifiers=["nil", "true"], **kw)
        rows = lensprobe.run_probes(model, [probe], tokenizer=bpe_tokenizer)
        return pd.DataFrame(rows).sort_values(["identifier", "layer", "metric"], na_position="first")

    a = run(padding_side="left", batch_size=16)
    b = run(padding_side="right", batch_size=3)
    for other in (b,):
        np.testing.assert_allclose(a.value.to_numpy(), other.value.to_numpy(), atol=1e-5, equal_nan=True)
        assert (a.n.to_numpy() == other.n.to_numpy()).all()


def test_bos_is_explicit(bpe_tokenizer):
    bos = bpe_tokenizer.bos_token_id
    plain = WorkingLanguageProbe("php", limit=10, batch_size=8, padding_side="right")
    with_bos = WorkingLanguageProbe("php", limit=10, batch_size=8, padding_side="right", add_bos=True)
    b0 = next(iter(plain.batches(bpe_tokenizer)))
    b1 = next(iter(with_bos.batches(bpe_tokenizer)))
    assert (b0.input_ids != bos).all()
    assert (b1.input_ids[:, 0] == bos).all()
    assert torch.equal(b1.input_ids[:, 1:b0.input_ids.shape[1] + 1][b0.attention_mask.bool()],
                       b0.input_ids[b0.attention_mask.bool()])
    assert plain.input_key() != with_bos.input_key()


def test_default_exclude_last_rule():
    assert [default_exclude_last(n) for n in (2, 3, 4, 6, 8, 10, 11, 12, 24, 48)] == [1, 1, 1, 2, 3, 4, 5, 5, 5, 5]
    with pytest.raises(ValueError):
        default_exclude_last(1)


def _constructed_probe(cls_rows, L, exclude_last, filter_generated=False):
    """A probe whose per-prompt records are set by hand (no model): Eq.1 arithmetic only."""
    probe = WorkingLanguageProbe("php", identifiers=["count"], limit=10, exclude_last=exclude_last,
                                 filter_generated=filter_generated)
    from lensprobe.suites import TokenSets

    probe.token_sets = {"count": TokenSets("count", frozenset({5}), frozenset({6}))}
    probe._n_layers = L
    probe._records = {}
    for k, cls in enumerate(cls_rows):
        cls = np.array(cls, dtype=np.int8)
        lpt = np.log(np.where(cls == TARGET, 0.6, 0.1))
        lpp = np.log(np.where(cls == PYTHON, 0.5, 0.2))
        probe._records[k] = _ItemRecord(cls, lpt, lpp)
    probe.items = probe.items[: len(cls_rows)]
    return probe


def test_eq1_with_exclude_last_on_constructed_case():
    T, P, O = TARGET, PYTHON, OTHER
    rows = [
        [P, P, P, T, O, T, T, T],  # final: target
        [P, O, T, T, P, P, O, O],  # final: other
        [T, P, P, O, O, O, T, T],  # final: target
    ]
    # default for 8 layers: exclude the last 3 -> layers 1..5
    probe = _constructed_probe(rows, 8, None)
    df = pd.DataFrame(probe.finalize())
    # layers 1..5: row0 P,P,P,T,O  row1 P,O,T,T,P  row2 T,P,P,O,O -> n_P = 3+2+2 = 7, n_T = 1+2+1 = 4
    assert _lookup(df, "count", "eq1_python_share") == (pytest.approx(7 / 11), 11)
    assert _lookup(df, "count", "eq1_target_share")[0] == pytest.approx(4 / 11)
    mass_t = sum(0.6 if c == T else 0.1 for r in rows for c in r[:5])
    mass_p = sum(0.5 if c == P else 0.2 for r in rows for c in r[:5])
    assert _lookup(df, "count", "eq1_mass_python_share")[0] == pytest.approx(mass_p / (mass_t + mass_p))
    assert _lookup(df, "count", "final_accuracy") == (pytest.approx(2 / 3), 3)
    assert _lookup(df, "count", "share_python_top1", 2) == (pytest.approx(2 / 3), 3)
    assert _lookup(df, None, "exclude_last")[0] == 3

    # explicit exclude_last=6 -> layers 1..2: n_P = 2+1+1 = 4, n_T = 1
    df = pd.DataFrame(_constructed_probe(rows, 8, 6).finalize())
    assert _lookup(df, "count", "eq1_python_share") == (pytest.approx(4 / 5), 5)

    # the paper's filter: only rows 0 and 2 (final top-1 target) count -> layers 1..5: n_P 5, n_T 2
    df = pd.DataFrame(_constructed_probe(rows, 8, None, filter_generated=True).finalize())
    assert _lookup(df, "count", "n_kept") == (2, 3)
    assert _lookup(df, "count", "eq1_python_share") == (pytest.approx(5 / 7), 7)
    assert _lookup(df, "count", "share_other_top1", 4) == (pytest.approx(1 / 2), 2)

    with pytest.raises(ValueError, match="leaves no layer"):
        _constructed_probe(rows, 8, 8).finalize()


def test_series_and_cli(bpe_tokenizer, tmp_path):
    from lensprobe.checkpoints import CheckpointSeries
    from lensprobe.cli import main as cli_main

    suite = lensprobe.load_suite(SUITE)
    run = tmp_path / "run"
    models = {}
    for step, seed in ((10, 0), (20, 1)):
        m = _boosted_model("gpt2", bpe_tokenizer, suite, seed=seed)
        m.save_pretrained(run / f"checkpoint-{step}")
        bpe_tokenizer.save_pretrained(run / f"checkpoint-{step}")
        models[step] = m
    ids = ["nil", "true"]
    df = working_language(CheckpointSeries(run), suite, limit=LIMIT, identifiers=ids, exclude_last=1)
    assert sorted(df.step.unique().tolist()) == [10, 20]
    assert set(df.checkpoint) == {"checkpoint-10", "checkpoint-20"}
    single = working_language(models[20], suite, tokenizer=bpe_tokenizer, limit=LIMIT, identifiers=ids,
                              exclude_last=1)
    part = df[df.step == 20].reset_index(drop=True)
    np.testing.assert_allclose(part.value.to_numpy(), single.value.to_numpy(), atol=1e-5, equal_nan=True)
    assert not np.allclose(df[df.step == 10].value.to_numpy(), part.value.to_numpy(), equal_nan=True)

    out = tmp_path / "wl.csv"
    argv = ["lens", str(run), "--suite", SUITE, "--out", str(out), "--limit", str(LIMIT), "--exclude-last", "1",
            "--steps", "20", "--identifier", "nil", "--identifier", "true"]
    assert cli_main(argv) == 0
    table = pd.read_csv(out)
    assert set(table.step) == {20}
    merged = table.merge(part, on=["identifier", "layer", "metric"], suffixes=("_cli", "_api"))
    assert len(merged) == len(part)  # one CLI row per API row (pandas matches NaN keys)
    np.testing.assert_allclose(merged.value_cli, merged.value_api, atol=1e-5, equal_nan=True)
    assert cli_main(["lens", str(run), "--suite", SUITE, "--out", str(tmp_path / "x.txt")]) == 2
    assert cli_main(["lens", str(tmp_path / "missing"), "--suite", SUITE, "--out", str(out)]) == 2
    assert cli_main(["lens", str(run), "--suite", SUITE, "--out", str(out), "--identifier", "strlen"]) == 2
