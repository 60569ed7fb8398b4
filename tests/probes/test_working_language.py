"""Working-language probe (Eq.1) against an independent manual logit lens."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

import lensprobe
from lensprobe.probes.working_language import (METRICS, OTHER, PROMPT_METRICS, PYTHON, TARGET, WorkingLanguageProbe,
                                               _ItemRecord, default_exclude_last, metric_name, working_language)
from lensprobe.testing import tiny_model
from lensprobe.table import SWEEP_COLUMNS, sort_table, stamp_rows, to_table

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
SHARE_METRICS = ("eq1_target_share", "eq1_python_share", "eq1_mass_target_share", "eq1_mass_python_share",
                 "eq1_counted", "share_target_top1", "share_python_top1", "share_other_top1", "logp_target",
                 "logp_python")


def _grouped_php_suite():
    """The bundled PHP suite with ids ``<group>:<id>`` (like Babel suites' ``<split>:...``)."""
    import yaml

    from lensprobe.suites import suite_from_dict

    data = yaml.safe_load((Path(lensprobe.__file__).resolve().parents[1] / "probes" / "php.yaml").read_text())
    group = {"strlen": "g1", "count": "g1", "sort": "g2", "gettype": "g2"}  # array_sum stays ungrouped
    for entry in data["identifiers"]:
        if entry["id"] in group:
            entry["id"] = f"{group[entry['id']]}:{entry['id']}"
    return suite_from_dict(data, name="grouped_php")


def _manual_records(model, tok, suite, identifiers, limit=LIMIT):
    """Independent lens: HF hidden_states[1..L-1] -> final norm -> lm_head; layer L = the model's logits.

    Returns ({identifier: [(cls[L], logp_target[L], logp_python[L]) per prompt]}, collided ids, L)."""
    norm, head = _final_norm_and_head(model)
    sets = suite.token_sets(tok)
    items = suite.render(seed=0, limit=limit, identifiers=identifiers)
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


def _level(recs, L, *, exclude_last, prompts):
    """Expected rows of one aggregation level, written from the paper's definition:
    {(metric, layer): (value, n)}; shares over the kept prompts, n = prompts kept, NaN if none."""
    generated = [r for r in recs if r[0][L - 1] == TARGET]
    kept = generated if prompts == "generated" else recs
    sfx = "" if prompts == "generated" else "_all_prompts"
    e = {("n_prompts", None): (len(recs), len(recs)),
         ("final_accuracy", None): (len(generated) / len(recs), len(recs))}
    if prompts == "generated":
        e[("n_kept", None)] = (len(generated), len(recs))
    n = len(kept)
    nan = math.nan
    if kept:
        cls = np.stack([r[0] for r in kept])
        lpt = np.stack([r[1] for r in kept])
        lpp = np.stack([r[2] for r in kept])
        used = cls[:, : L - exclude_last]
        n_t, n_p = int((used == TARGET).sum()), int((used == PYTHON).sum())
        mt, mp = np.exp(lpt[:, : L - exclude_last]).sum(), np.exp(lpp[:, : L - exclude_last]).sum()
    else:
        n_t = n_p = 0
        mt = mp = 0.0
    e[("eq1_python_share" + sfx, None)] = (n_p / (n_t + n_p) if n_t + n_p else nan, n)
    e[("eq1_target_share" + sfx, None)] = (n_t / (n_t + n_p) if n_t + n_p else nan, n)
    e[("eq1_counted" + sfx, None)] = (n_t + n_p, n)
    e[("eq1_mass_python_share" + sfx, None)] = (mp / (mt + mp) if kept else nan, n)
    e[("eq1_mass_target_share" + sfx, None)] = (mt / (mt + mp) if kept else nan, n)
    for layer in range(1, L + 1):
        c = cls[:, layer - 1] if kept else None
        e[("share_target_top1" + sfx, layer)] = ((c == TARGET).mean() if kept else nan, n)
        e[("share_python_top1" + sfx, layer)] = ((c == PYTHON).mean() if kept else nan, n)
        e[("share_other_top1" + sfx, layer)] = ((c == OTHER).mean() if kept else nan, n)
        e[("logp_target" + sfx, layer)] = (lpt[:, layer - 1].mean() if kept else nan, n)
        e[("logp_python" + sfx, layer)] = (lpp[:, layer - 1].mean() if kept else nan, n)
    return e


def _expected(per, L, *, exclude_last, prompts="generated"):
    """{identifier | '<group>:*' | None (suite): {(metric, layer): (value, n)}}."""
    levels = {ident: recs for ident, recs in per.items()}
    for ident, recs in per.items():
        if ":" in ident:
            levels.setdefault(ident.split(":")[0] + ":*", []).extend(recs)
    levels[None] = [r for recs in per.values() for r in recs]
    return {k: _level(v, L, exclude_last=exclude_last, prompts=prompts) for k, v in levels.items()}


def _lookup(df, ident, metric, layer=None):
    who = df.identifier.isna() if ident is None else df.identifier == ident
    sel = df[who & (df.metric == metric)]
    sel = sel[sel.layer.isna()] if layer is None else sel[sel.layer == layer]
    assert len(sel) == 1, (ident, metric, layer, len(sel))
    return float(sel.value.iloc[0]), int(sel.n.iloc[0])


def _compare(df, expected, collided, *, require_all_classes=True):
    """Every expected (value, n) is in ``df``; the share metrics of ``df`` are exactly the expected ones."""
    seen_classes = set()
    for ident, e in expected.items():
        for (metric, layer), (want, want_n) in e.items():
            got, n = _lookup(df, ident, metric, layer)
            assert n == want_n, (ident, metric, layer, n, want_n)
            if math.isnan(want):
                assert math.isnan(got), (ident, metric, layer, got)
            else:
                assert got == pytest.approx(float(want), abs=2e-5), (ident, metric, layer, got, want)
            if metric.startswith("share_") and got > 0:
                seen_classes.add(metric.removesuffix("_all_prompts"))
        who = df.identifier.isna() if ident is None else df.identifier == ident
        unfiltered = any(m.endswith("_all_prompts") for m, _ in e)
        family = df.metric.str.endswith("_all_prompts") == unfiltered
        share_rows = df[who & family & df.metric.str.removesuffix("_all_prompts").isin(SHARE_METRICS)]
        assert set(zip(share_rows.metric, share_rows.layer.astype(object).where(share_rows.layer.notna(), None))) \
            == {k for k in e if k[0].removesuffix("_all_prompts") in SHARE_METRICS}, ident
    if require_all_classes:
        assert seen_classes == {"share_target_top1", "share_python_top1", "share_other_top1"}, \
            "test is too weak: some top-1 class never occurs"
    assert _lookup(df, None, "n_excluded_collisions")[0] == len(collided)
    for ident in collided:
        assert _lookup(df, ident, "excluded_collision")[0] == 1.0
        assert not (df[(df.identifier == ident)].metric == "share_target_top1").any()


def _filter_matters(per, L, *, exclude_last):
    """(prompts kept, prompts) and whether some Eq.1 share differs between the two prompt sets."""
    gen = _expected(per, L, exclude_last=exclude_last, prompts="generated")
    everything = _expected(per, L, exclude_last=exclude_last, prompts="all")
    kept, total = gen[None][("n_kept", None)]
    differs = any(not np.isclose(gen[i][("eq1_python_share", None)][0],
                                 everything[i][("eq1_python_share_all_prompts", None)][0], equal_nan=True)
                  for i in gen)
    return kept, total, differs


@pytest.mark.parametrize("model_type,seed", [("gpt2", 1), ("llama", 2)])
def test_default_is_the_papers_rule_against_manual_lens(suite_bpe, model_type, seed):
    """Default: shares over prompts whose model generates the target (independent HF lens); the
    unfiltered variant under its own names; both in one probe; n = prompts kept everywhere."""
    suite = lensprobe.load_suite(SUITE)
    # seeds chosen so that the filter keeps some prompts, not all, and changes the shares (gpt2: 2 of 30
    # prompts kept, Python share 0.5 vs 0.9 unfiltered), and for gpt2 all three top-1 classes occur
    model = _boosted_model(model_type, suite_bpe, suite, seed=seed)
    default = WorkingLanguageProbe(suite, limit=LIMIT, identifiers=IDENTS, exclude_last=1)
    unfiltered = WorkingLanguageProbe(suite, limit=LIMIT, identifiers=IDENTS, exclude_last=1, prompts="all")
    both = WorkingLanguageProbe(suite, limit=LIMIT, identifiers=IDENTS, exclude_last=1, prompts=("all", "generated"))
    assert default.prompts == ("generated",) and both.prompts == ("generated", "all")
    # equal input keys share the forward passes; the configs (resume keys) differ
    assert default.input_key() == unfiltered.input_key() == both.input_key()
    assert len({default.config_hash(), unfiltered.config_hash(), both.config_hash()}) == 3
    dfs = [pd.DataFrame(lensprobe.run_probes(model, [p], tokenizer=suite_bpe))
           for p in (default, unfiltered, both)]
    df, df_all, df_both = dfs
    assert set(df.language) == {"go"} and set(df.probe) == {"working_language"}
    per, collided, L = _manual_records(model, suite_bpe, suite, IDENTS)
    assert collided == ["=append"]  # Go append vs Python .append share `append`
    kept, total, differs = _filter_matters(per, L, exclude_last=1)
    assert 0 < kept < total and differs, "test is too weak: the filter does not change the shares"

    expected = _expected(per, L, exclude_last=1)
    _compare(df, expected, collided, require_all_classes=model_type == "gpt2")
    assert not df.metric.str.endswith("_all_prompts").any()
    expected_all = _expected(per, L, exclude_last=1, prompts="all")
    _compare(df_all, expected_all, collided, require_all_classes=model_type == "gpt2")
    assert "n_kept" not in set(df_all.metric)
    assert _lookup(df, None, "exclude_last")[0] == 1
    # one probe with both prompt sets: the union of both tables, prompt-independent rows once
    key = ["identifier", "layer", "metric"]
    union = pd.concat([df, df_all]).drop_duplicates(key)
    merged = df_both.merge(union, on=key, suffixes=("", "_parts"), how="outer", indicator=True)
    assert (merged["_merge"] == "both").all() and not df_both.duplicated(key).any()
    np.testing.assert_allclose(merged.value, merged.value_parts, equal_nan=True)
    assert (merged.n == merged.n_parts).all()


def test_unfiltered_variant_reproduces_the_previous_default(suite_bpe):
    """``prompts="all"`` gives the numbers the probe reported before the paper's rule became the
    default (frozen from lensprobe 58a8651, whose rows had no filter): only the names changed."""
    suite = lensprobe.load_suite(SUITE)
    model = _boosted_model("gpt2", suite_bpe, suite, seed=3)
    df = working_language(model, suite, tokenizer=suite_bpe, limit=LIMIT, identifiers=["nil", "true"],
                          exclude_last=1, prompts="all")
    # (identifier, metric) -> value printed by that version (its n for Eq.1 counted tokens; now prompts)
    old = {(None, "eq1_python_share"): 1 / 11, (None, "eq1_mass_python_share"): 0.10104650688779537,
           (None, "final_accuracy"): 0.2, ("true", "eq1_python_share"): 1.0, ("nil", "eq1_python_share"): 0.0,
           ("nil", "final_accuracy"): 0.4, ("true", "final_accuracy"): 0.0}
    for (ident, metric), value in old.items():
        name = metric if metric == "final_accuracy" else metric + "_all_prompts"
        assert _lookup(df, ident, name) == (pytest.approx(value, abs=1e-6), 20 if ident is None else LIMIT)
    # the paper's rule on the same model: `true` is never generated -> NaN, not the 1.0 above
    gen = working_language(model, suite, tokenizer=suite_bpe, limit=LIMIT, identifiers=["nil", "true"],
                           exclude_last=1)
    assert math.isnan(_lookup(gen, "true", "eq1_python_share")[0]) and _lookup(gen, "true", "n_kept")[0] == 0
    assert _lookup(gen, None, "eq1_python_share") == (0.0, 4)


def test_group_rows_pool_their_identifiers(suite_bpe):
    """Ids ``<group>:<id>`` get pooled rows ``<group>:*`` (Babel: one per split), checked against the
    manual lens; ungrouped ids only enter the suite row."""
    suite = _grouped_php_suite()
    model = _boosted_model("gpt2", suite_bpe, suite, seed=1)
    idents = ["g1:strlen", "g1:count", "g2:sort", "g2:gettype", "array_sum"]  # g2:sort collides (sort/sorted)
    probe = WorkingLanguageProbe(suite, limit=5, identifiers=idents, exclude_last=1, prompts=("generated", "all"))
    df = pd.DataFrame(lensprobe.run_probes(model, [probe], tokenizer=suite_bpe))
    per, collided, L = _manual_records(model, suite_bpe, suite, idents, limit=5)
    assert sorted(i for i in df.identifier.dropna().unique() if i.endswith(":*")) == ["g1:*", "g2:*"]
    for prompts in ("generated", "all"):
        expected = _expected(per, L, exclude_last=1, prompts=prompts)
        _compare(df, expected, collided, require_all_classes=False)
    # this seed keeps 4 of g1's 10 prompts (all from g1:count) and none of g2's 5
    assert _lookup(df, "g1:*", "n_kept") == (4, 10) and _lookup(df, "g1:count", "n_kept") == (4, 5)
    assert _lookup(df, "g1:*", "eq1_mass_python_share")[1] == 4
    assert _lookup(df, "g2:*", "n_kept") == (0, 5)
    assert math.isnan(_lookup(df, "g2:*", "eq1_python_share")[0])
    assert math.isnan(_lookup(df, "g2:*", "eq1_mass_python_share")[0])
    assert not math.isnan(_lookup(df, "g2:*", "eq1_mass_python_share_all_prompts")[0])


def test_working_language_table_columns(suite_bpe):
    suite = lensprobe.load_suite("php")
    model = _boosted_model("gpt2", suite_bpe, suite)
    df = working_language(model, suite, tokenizer=suite_bpe, limit=LIMIT, identifiers=["count"])
    # the sweep table's columns; a model outside a series (and not loaded from a path) has no checkpoint columns
    assert tuple(df.columns) == SWEEP_COLUMNS and set(df.probe) == {"working_language"}
    assert model.config.name_or_path == "" and df[["run", "checkpoint", "step", "tokens"]].isna().all().all()
    # exactly the probe's rows from the engine, stamped (the one-model path of the sweep)
    probe = WorkingLanguageProbe(suite, limit=LIMIT, identifiers=["count"])
    rows = lensprobe.run_probes(model, [probe], tokenizer=suite_bpe)
    expected = sort_table(to_table(stamp_rows(rows)))
    pd.testing.assert_frame_equal(df, expected)
    assert set(df.language) == {"php"}
    assert _lookup(df, "count", "n_prompts") == (LIMIT, LIMIT)
    # default exclude_last for a 3-layer model is 1
    assert _lookup(df, None, "exclude_last") == (1, 3)


def test_padding_side_and_batch_size_do_not_change_rows(suite_bpe):
    suite = lensprobe.load_suite(SUITE)
    model = _boosted_model("llama", suite_bpe, suite, seed=1)

    def run(**kw):
        probe = WorkingLanguageProbe(suite, limit=LIMIT, identifiers=["nil", "true"], **kw)
        rows = lensprobe.run_probes(model, [probe], tokenizer=suite_bpe)
        return pd.DataFrame(rows).sort_values(["identifier", "layer", "metric"], na_position="first")

    a = run(padding_side="left", batch_size=16)
    b = run(padding_side="right", batch_size=3)
    for other in (b,):
        np.testing.assert_allclose(a.value.to_numpy(), other.value.to_numpy(), atol=1e-5, equal_nan=True)
        assert (a.n.to_numpy() == other.n.to_numpy()).all()


def test_bos_is_explicit(suite_bpe):
    bos = suite_bpe.bos_token_id
    plain = WorkingLanguageProbe("php", limit=10, batch_size=8, padding_side="right")
    with_bos = WorkingLanguageProbe("php", limit=10, batch_size=8, padding_side="right", add_bos=True)
    b0 = next(iter(plain.batches(suite_bpe)))
    b1 = next(iter(with_bos.batches(suite_bpe)))
    assert (b0.input_ids != bos).all()
    assert (b1.input_ids[:, 0] == bos).all()
    assert torch.equal(b1.input_ids[:, 1:b0.input_ids.shape[1] + 1][b0.attention_mask.bool()],
                       b0.input_ids[b0.attention_mask.bool()])
    assert plain.input_key() != with_bos.input_key()


def test_default_exclude_last_rule():
    assert [default_exclude_last(n) for n in (2, 3, 4, 6, 8, 10, 11, 12, 24, 48)] == [1, 1, 1, 2, 3, 4, 5, 5, 5, 5]
    with pytest.raises(ValueError):
        default_exclude_last(1)


def _constructed_probe(cls_rows, L, exclude_last, prompts="generated", *, suite="php"):
    """A probe whose per-prompt records are set by hand (no model): Eq.1 arithmetic only.

    ``cls_rows``: per-layer top-1 classes of each prompt, a list (identifier ``count``) or
    ``{identifier: list}``."""
    from lensprobe.suites import TokenSets

    by_ident = cls_rows if isinstance(cls_rows, dict) else {"count": cls_rows}
    probe = WorkingLanguageProbe(suite, identifiers=list(by_ident), limit=10, exclude_last=exclude_last,
                                 prompts=prompts)
    probe.token_sets = {i: TokenSets(i, frozenset({5}), frozenset({6})) for i in by_ident}
    probe._n_layers = L
    probe._records = {}
    items = []
    for ident, rows in by_ident.items():
        mine = [it for it in probe.items if it.identifier == ident][: len(rows)]
        for it, cls in zip(mine, rows):
            cls = np.array(cls, dtype=np.int8)
            lpt = np.log(np.where(cls == TARGET, 0.6, 0.1))
            lpp = np.log(np.where(cls == PYTHON, 0.5, 0.2))
            probe._records[len(items)] = _ItemRecord(cls, lpt, lpp)
            items.append(it)
    probe.items = items
    return probe


def test_eq1_with_exclude_last_on_constructed_case():
    T, P, O = TARGET, PYTHON, OTHER
    rows = [
        [P, P, P, T, O, T, T, T],  # final: target
        [P, O, T, T, P, P, O, O],  # final: other
        [T, P, P, O, O, O, T, T],  # final: target
    ]
    # unfiltered, default exclude_last for 8 layers (3) -> layers 1..5:
    # row0 P,P,P,T,O  row1 P,O,T,T,P  row2 T,P,P,O,O -> n_P = 3+2+2 = 7, n_T = 1+2+1 = 4
    df = pd.DataFrame(_constructed_probe(rows, 8, None, "all").finalize())
    assert _lookup(df, "count", "eq1_python_share_all_prompts") == (pytest.approx(7 / 11), 3)
    assert _lookup(df, "count", "eq1_target_share_all_prompts") == (pytest.approx(4 / 11), 3)
    assert _lookup(df, "count", "eq1_counted_all_prompts") == (11, 3)
    mass_t = sum(0.6 if c == T else 0.1 for r in rows for c in r[:5])
    mass_p = sum(0.5 if c == P else 0.2 for r in rows for c in r[:5])
    assert _lookup(df, "count", "eq1_mass_python_share_all_prompts") == \
        (pytest.approx(mass_p / (mass_t + mass_p)), 3)
    assert _lookup(df, "count", "final_accuracy") == (pytest.approx(2 / 3), 3)
    assert _lookup(df, "count", "share_python_top1_all_prompts", 2) == (pytest.approx(2 / 3), 3)
    assert _lookup(df, None, "exclude_last")[0] == 3
    assert not df.metric.isin(["eq1_python_share", "n_kept"]).any()

    # explicit exclude_last=6 -> layers 1..2: n_P = 2+1+1 = 4, n_T = 1
    df = pd.DataFrame(_constructed_probe(rows, 8, 6, "all").finalize())
    assert _lookup(df, "count", "eq1_python_share_all_prompts") == (pytest.approx(4 / 5), 3)

    # the default, the paper's rule: only rows 0 and 2 (final top-1 target) count -> layers 1..5: n_P 5, n_T 2
    df = pd.DataFrame(_constructed_probe(rows, 8, None).finalize())
    assert _lookup(df, "count", "n_kept") == (2, 3)
    assert _lookup(df, "count", "eq1_python_share") == (pytest.approx(5 / 7), 2)
    assert _lookup(df, "count", "eq1_counted") == (7, 2)
    mass_t = sum(0.6 if c == T else 0.1 for r in rows[::2] for c in r[:5])
    mass_p = sum(0.5 if c == P else 0.2 for r in rows[::2] for c in r[:5])
    assert _lookup(df, "count", "eq1_mass_python_share") == (pytest.approx(mass_p / (mass_t + mass_p)), 2)
    assert _lookup(df, "count", "share_other_top1", 4) == (pytest.approx(1 / 2), 2)
    assert _lookup(df, "count", "logp_target", 1) == (pytest.approx(np.log(0.6 * 0.1) / 2), 2)
    assert _lookup(df, "count", "final_accuracy") == (pytest.approx(2 / 3), 3)
    assert not df.metric.str.endswith("_all_prompts").any()

    with pytest.raises(ValueError, match="leaves no layer"):
        _constructed_probe(rows, 8, 8).finalize()


def test_nothing_kept_is_nan_at_every_level():
    """No prompt generates its target: every share (identifier, group, suite, per layer, mass) is
    NaN with n = 0, never 0 or 1; the unfiltered variant and final accuracy stay finite."""
    T, P, O = TARGET, PYTHON, OTHER
    never = [[P, P, T, P], [T, P, P, O], [P, O, O, P]]      # final: python / other / python
    probe = _constructed_probe({"g1:strlen": never, "g1:count": never[:2], "array_sum": never[1:]}, 4, 1,
                               ("generated", "all"), suite=_grouped_php_suite())
    df = pd.DataFrame(probe.finalize())
    levels = {"g1:strlen": 3, "g1:count": 2, "array_sum": 2, "g1:*": 5, None: 7}
    for ident, n_prompts in levels.items():
        who = df.identifier.isna() if ident is None else df.identifier == ident
        rows = df[who]
        assert _lookup(df, ident, "n_kept") == (0, n_prompts)
        assert _lookup(df, ident, "final_accuracy") == (0.0, n_prompts)
        gen = rows[rows.metric.isin(SHARE_METRICS)]
        assert len(gen) == 5 + 5 * 4  # 5 whole-model rows + 5 metrics x 4 layers
        assert (gen.n == 0).all(), ident
        counted = gen.metric == "eq1_counted"
        assert gen[counted].value.tolist() == [0.0]
        assert gen[~counted].value.isna().all(), gen[~counted & gen.value.notna()]
        unf = rows[rows.metric.str.endswith("_all_prompts")]
        assert len(unf) == len(gen) and (unf.n == n_prompts).all()
        assert unf[unf.metric.str.startswith("share_")].value.notna().all()
    # a kept prompt whose lens never lands in either set: Eq.1 is 0/0 -> NaN, with n = 1 prompt
    df = pd.DataFrame(_constructed_probe([[O, O, O, T]], 4, 1).finalize())
    assert math.isnan(_lookup(df, "count", "eq1_python_share")[0])
    assert _lookup(df, "count", "eq1_python_share")[1] == 1
    assert _lookup(df, "count", "share_other_top1", 1) == (1.0, 1)


def test_prompts_option_is_validated_and_keyed():
    for bad in ("generated_only", [], ["all", "all"], ("generated", "some")):
        with pytest.raises(ValueError, match="prompts"):
            WorkingLanguageProbe("php", prompts=bad)
    with pytest.raises(TypeError, match="prompts"):
        WorkingLanguageProbe("php", prompts=1)
    with pytest.raises(TypeError):
        WorkingLanguageProbe("php", filter_generated=True)  # the old flag is gone, not ignored
    with pytest.raises(TypeError):
        WorkingLanguageProbe("php", 0)  # keyword-only
    cfgs = {p: WorkingLanguageProbe("php", prompts=p).config()["prompts"] for p in ("generated", "all")}
    assert cfgs == {"generated": ["generated"], "all": ["all"]}
    assert WorkingLanguageProbe("php").config()["prompts"] == ["generated"]
    assert metric_name("eq1_python_share", "all") == "eq1_python_share_all_prompts"
    assert metric_name("eq1_python_share") == "eq1_python_share"
    assert metric_name("final_accuracy", "all") == "final_accuracy"
    with pytest.raises(KeyError, match="unknown"):
        metric_name("eq1_share")
    assert set(PROMPT_METRICS) == set(SHARE_METRICS)
    assert {m + "_all_prompts" for m in SHARE_METRICS} <= set(METRICS)


def test_series_and_cli(suite_bpe, tmp_path, capsys):
    from lensprobe.checkpoints import CheckpointSeries
    from lensprobe.cli import main as cli_main

    suite = lensprobe.load_suite(SUITE)
    run = tmp_path / "run"
    models = {}
    for step, seed in ((10, 0), (20, 1)):
        m = _boosted_model("gpt2", suite_bpe, suite, seed=seed)
        m.save_pretrained(run / f"checkpoint-{step}")
        suite_bpe.save_pretrained(run / f"checkpoint-{step}")
        models[step] = m
    ids = ["nil", "true"]
    df = working_language(CheckpointSeries(run), suite, limit=LIMIT, identifiers=ids, exclude_last=1)
    assert sorted(df.step.unique().tolist()) == [10, 20]
    assert set(df.checkpoint) == {"checkpoint-10", "checkpoint-20"}
    single = working_language(models[20], suite, tokenizer=suite_bpe, limit=LIMIT, identifiers=ids,
                              exclude_last=1)
    part = df[df.step == 20].reset_index(drop=True)
    np.testing.assert_allclose(part.value.to_numpy(), single.value.to_numpy(), atol=1e-5, equal_nan=True)
    assert not np.allclose(df[df.step == 10].value.to_numpy(), part.value.to_numpy(), equal_nan=True)

    # the API default is the paper's rule: the same rows as asking for it
    explicit = working_language(models[20], suite, tokenizer=suite_bpe, limit=LIMIT, identifiers=ids,
                                exclude_last=1, prompts="generated")
    pd.testing.assert_frame_equal(single, explicit)

    out = tmp_path / "wl.csv"
    argv = ["lens", str(run), "--suite", SUITE, "--out", str(out), "--limit", str(LIMIT), "--exclude-last", "1",
            "--steps", "20", "--identifier", "nil", "--identifier", "true"]
    assert cli_main(argv) == 0
    printed = capsys.readouterr().out
    table = pd.read_csv(out)
    assert set(table.step) == {20}
    merged = table.merge(part, on=["identifier", "layer", "metric"], suffixes=("_cli", "_api"))
    assert len(merged) == len(part) == len(table)  # one CLI row per API row (pandas matches NaN keys)
    np.testing.assert_allclose(merged.value_cli, merged.value_api, atol=1e-5, equal_nan=True)
    assert (merged.n_cli == merged.n_api).all()
    # CLI default = the paper's rule: shares rest on the kept prompts, and the summary prints that n
    kept = int(_lookup(table, None, "n_kept")[0])
    assert 0 < kept < 2 * LIMIT
    assert _lookup(table, None, "eq1_python_share")[1] == kept
    assert not table.metric.str.endswith("_all_prompts").any()
    lines = printed.splitlines()
    assert lines[0].split()[-2:] == ["n", "(eq1_python_share)"], printed
    assert next(ln for ln in lines if ln.split()[:1] == ["20"]).split()[-1] == str(kept), printed
    # --prompts all: the unfiltered variant under its own names, as the API computes it
    assert cli_main(argv[:-4] + ["--prompts", "all", "--identifier", "nil", "--identifier", "true"]) == 0
    table_all = pd.read_csv(out)
    api_all = working_language(models[20], suite, tokenizer=suite_bpe, limit=LIMIT, identifiers=ids,
                               exclude_last=1, prompts="all")
    merged = table_all.merge(api_all, on=["identifier", "layer", "metric"], suffixes=("_cli", "_api"))
    assert len(merged) == len(api_all) == len(table_all)
    np.testing.assert_allclose(merged.value_cli, merged.value_api, atol=1e-5, equal_nan=True)
    assert _lookup(table_all, None, "eq1_python_share_all_prompts")[1] == 2 * LIMIT
    assert _lookup(table_all, None, "eq1_python_share_all_prompts")[0] != \
        pytest.approx(_lookup(table, None, "eq1_python_share")[0])
    assert cli_main(argv + ["--prompts", "all", "all"]) == 2
    assert cli_main(["lens", str(run), "--suite", SUITE, "--out", str(tmp_path / "x.txt")]) == 2
    assert cli_main(["lens", str(tmp_path / "missing"), "--suite", SUITE, "--out", str(out)]) == 2
    assert cli_main(["lens", str(run), "--suite", SUITE, "--out", str(out), "--identifier", "strlen"]) == 2


def test_prompts_longer_than_the_context_are_refused_by_name(suite_bpe):
    """A model whose context is shorter than a prompt: a ValueError naming the suite item and both lengths
    (not the position table's `IndexError: index out of range in self`), before any forward pass."""
    suite = lensprobe.load_suite(SUITE)
    probe = WorkingLanguageProbe(suite, limit=2, identifiers=["nil", "true"])
    lengths = {(it.identifier, it.index): len(probe.encode_prompt(suite_bpe, it.prompt)) for it in probe.items}
    (ident, index), longest = max(lengths.items(), key=lambda kv: kv[1])
    context = min(lengths.values())  # the shortest prompt fits, the longest does not
    assert longest > context
    model = tiny_model("gpt2", vocab_size=len(suite_bpe), n_positions=context)
    calls = []
    model.register_forward_pre_hook(lambda *a: calls.append(1))
    with pytest.raises(ValueError) as err:
        working_language(model, suite, tokenizer=suite_bpe, limit=2, identifiers=["nil", "true"])
    msg = str(err.value)
    assert f"model's context of {context} tokens" in msg and f"has {longest} tokens" in msg
    assert f"identifier {ident!r}, prompt #{index}" in msg and str(suite.path) in msg
    assert "longer context" in msg and "--identifier" in msg  # what to do
    assert not calls  # refused before the first forward pass
    # with BOS the count includes it: a context that holds every prompt but one token short with BOS
    probe_bos = WorkingLanguageProbe(suite, limit=2, identifiers=["nil", "true"], add_bos=True)
    model = tiny_model("gpt2", vocab_size=len(suite_bpe), n_positions=longest)
    assert not working_language(model, suite, tokenizer=suite_bpe, limit=2, identifiers=["nil", "true"]).empty
    with pytest.raises(ValueError, match=f"has {longest + 1} tokens with BOS"):
        lensprobe.run_probes(model, [probe_bos], tokenizer=suite_bpe)
