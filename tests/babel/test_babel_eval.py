"""Babel evaluation: body extraction, line accuracy, sandboxed pass@1, bootstrap summaries."""
import collections

import numpy as np
import pytest

import lensprobe.babel.evaluation as babel
from lensprobe.babel.evaluation import (BabelEvaluation, babel_items, bootstrap_interval, evaluate_babel, execute_items,
                             extract_body, score_lines)
from lensprobe.babel.splits import make_splits
from lensprobe.babel.concepts import render


@pytest.fixture(scope="module")
def splits():
    return make_splits(seed=0, n_shared=4, n_python_only=4, n_target_only=4, n_control=4)


def canonical_completion(item, trailing="\n\ndef other():\n    pass\n"):
    r = render(item.concept, item.language)
    return "\n" + "\n".join(r.body) + ("\n" + r.footer if r.footer else "") + trailing


def test_extract_body_stops_at_the_end_of_the_function():
    assert extract_body("python", "\n    a = 1\n\n    return a\nprint(3)\n    x") == ["    a = 1", "    return a"]
    assert extract_body("php", "\n    $a = 1;\n    return $a;\n}\nfunction g() {\n") == ["    $a = 1;", "    return $a;"]
    assert extract_body("python", " junk\n    a = 1\n") == ["    a = 1"]  # text on the header line is ignored


def test_score_lines_is_positional():
    ref = ["    a", "    b", "    c"]
    assert score_lines(["    a", "    b", "    c"], ref) == (1.0, True)
    assert score_lines(["    a", "    c"], ref) == (pytest.approx(1 / 3), False)
    assert score_lines(["    a", "    b", "    c", "    d"], ref) == (1.0, False)
    assert score_lines([], ref) == (0.0, False)


def test_bootstrap_interval_brackets_the_mean():
    v = np.r_[np.ones(30), np.zeros(10)]
    mean, lo, hi = bootstrap_interval(v, n_boot=2000, seed=1)
    assert mean == 0.75
    se = np.sqrt(0.75 * 0.25 / 40)
    assert lo == pytest.approx(0.75 - 1.96 * se, abs=0.03) and hi == pytest.approx(0.75 + 1.96 * se, abs=0.03)


def test_items_cover_every_split_and_language(splits):
    items = babel_items(splits, languages=("python", "php"))
    assert len(items) == 4 * 4 * 2
    it = next(i for i in items if i.language == "php")
    assert it.prompt.startswith("function ") and it.prompt.endswith("{") and it.footer == "}"


def test_sandboxed_pass_at_1_isolates_broken_completions(splits):
    items = babel_items(splits, languages=("python", "php"))
    comps = [canonical_completion(it) for it in items]
    broken = {0, 5, len(items) - 1}
    for k in broken:
        comps[k] = comps[k].replace("return", "retur n (")  # syntax error in one concept only
    result = execute_items(items, comps)
    assert [k for k, ok in enumerate(result) if not ok] == sorted(broken)


def test_evaluate_babel_summarises_per_split_and_language(splits, monkeypatch):
    """With completions canonical for shared concepts and empty elsewhere, the summary must say so."""
    def fake_complete(model, tokenizer, prompts, *, max_new_tokens, batch_size=32, language=None):
        out = []
        by_prompt = {it.prompt: it for it in babel_items(splits, languages=("python", "php"))}
        for p in prompts:
            it = by_prompt[p]
            out.append(canonical_completion(it) if it.split == "shared" else "\n")
        return out

    class Tok:
        def __call__(self, text, add_special_tokens=False):
            return {"input_ids": list(range(len(text.split())))}

    monkeypatch.setattr(babel, "greedy_complete", fake_complete)
    ev = evaluate_babel(None, Tok(), splits, languages=("python", "php"), n_boot=200)
    s = ev.summary().set_index(["split", "language", "metric"])
    for lang in ("python", "php"):
        for metric in ("line_acc", "exact_match", "pass@1"):
            assert s.loc[("shared", lang, metric), "value"] == 1.0
            assert s.loc[("control", lang, metric), "value"] == 0.0
            assert s.loc[("shared", lang, metric), "n"] == 4
    rows = ev.rows()
    assert {r["metric"] for r in rows} >= {"line_acc", "line_acc_lo", "line_acc_hi", "pass@1"}
    assert all(r["probe"] == "babel" for r in rows)


def test_greedy_complete_equals_hf_generate_with_left_padding():
    import torch

    from lensprobe.babel.evaluation import greedy_complete
    from lensprobe.testing import tiny_model, tiny_tokenizer

    model, tok = tiny_model("gpt2", seed=3), tiny_tokenizer()
    prompts = ["<t5> <t9> <t11>", "<t7>", "<t20> <t21> <t22> <t23> <t24>"]
    ours = greedy_complete(model, tok, prompts, max_new_tokens=12, batch_size=2)
    for p, text in zip(prompts, ours):  # unbatched HF generate as the oracle
        ids = torch.tensor([tok(p, add_special_tokens=False)["input_ids"]])
        ref = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), do_sample=False, max_new_tokens=12,
                             pad_token_id=0, eos_token_id=None)
        assert text == tok.decode(ref[0, ids.shape[1]:].tolist(), skip_special_tokens=True)


@pytest.mark.parametrize("model_type", ["gpt2", "llama", "gemma2"])
def test_greedy_complete_uses_the_current_cache_api(model_type):
    """No FutureWarning / DeprecationWarning from the loop (transformers 5 renamed past_key_values= to cache=;
    the old name warned once per checkpoint), and the cached loop equals a loop without a cache."""
    import warnings

    import torch

    from lensprobe.babel.evaluation import greedy_complete
    from lensprobe.testing import tiny_model, tiny_tokenizer

    model, tok = tiny_model(model_type, seed=1), tiny_tokenizer()
    prompts = ["<t5> <t9> <t11>", "<t7>"]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ours = greedy_complete(model, tok, prompts, max_new_tokens=6, batch_size=2)
    bad = [w for w in caught if issubclass(w.category, (FutureWarning, DeprecationWarning))]
    assert not bad, [f"{w.category.__name__}: {w.message}" for w in bad]
    for p, text in zip(prompts, ours):  # no cache: the whole sequence again at every step
        ids = tok(p, add_special_tokens=False)["input_ids"]
        for _ in range(6):
            with torch.no_grad():
                ids.append(int(model(input_ids=torch.tensor([ids]), use_cache=False).logits[0, -1].argmax()))
        assert text == tok.decode(ids[-6:], skip_special_tokens=True)


def _independent_line_acc(generated_lines, reference_lines):
    """Positional line accuracy written out (not lensprobe.babel.evaluation.score_lines)."""
    hits = 0
    for i, ref in enumerate(reference_lines):
        if i < len(generated_lines) and generated_lines[i].rstrip() == ref.rstrip():
            hits += 1
    return hits / len(reference_lines)


@pytest.fixture(scope="module")
def shifted_evaluation(splits):
    """python_only completions write the *next* concept's body (cyclically), shared ones their own,
    control ones nothing: the body prior then differs from line accuracy in a known way."""
    items = babel_items(splits, languages=("python", "php"))
    by_prompt = {it.prompt: it for it in items}
    by_split = {}
    for it in items:
        by_split.setdefault((it.split, it.language), []).append(it)

    def fake_complete(model, tokenizer, prompts, *, max_new_tokens, batch_size=32, language=None):
        out = []
        for p in prompts:
            it = by_prompt[p]
            group = by_split[(it.split, it.language)]
            if it.split == "python_only":
                out.append(canonical_completion(group[(group.index(it) + 1) % len(group)]))
            elif it.split == "control":
                out.append("\n")
            else:
                out.append(canonical_completion(it))
        return out

    class Tok:
        def __call__(self, text, add_special_tokens=False):
            return {"input_ids": list(range(len(text.split())))}

    mp = pytest.MonkeyPatch()
    mp.setattr(babel, "greedy_complete", fake_complete)
    try:
        ev = evaluate_babel(None, Tok(), splits, languages=("python", "php"), n_boot=200, execute=False)
    finally:
        mp.undo()
    return ev, by_split


def test_body_prior_matches_an_independent_computation(shifted_evaluation):
    ev, by_split = shifted_evaluation
    s = ev.summary().set_index(["split", "language", "metric"])
    for (split, language), group in by_split.items():
        refs = [list(render(it.concept, language).body) for it in group]
        if split == "python_only":
            gens = [refs[(i + 1) % len(refs)] for i in range(len(refs))]
        elif split == "control":
            gens = [[] for _ in refs]
        else:
            gens = refs
        own = np.mean([_independent_line_acc(g, r) for g, r in zip(gens, refs)])
        domains = [it.concept.domain for it in group]
        per_item = []
        for i, g in enumerate(gens):  # the other bodies of the split with the same domain (prompt shape)
            others = [refs[j] for j in range(len(refs)) if j != i and domains[j] == domains[i]]
            if others:
                per_item.append(np.mean([_independent_line_acc(g, r) for r in others]))
        prior = np.mean(per_item)
        assert s.loc[(split, language, "line_acc"), "value"] == pytest.approx(own)
        assert s.loc[(split, language, "line_acc_prior"), "value"] == pytest.approx(prior)
        assert s.loc[(split, language, "line_acc_prior"), "n"] == len(per_item)
        lo, hi = s.loc[(split, language, "line_acc_prior"), ["lo", "hi"]]
        assert lo <= prior + 1e-12 and prior <= hi + 1e-12
    # shifted completions: each matches its neighbour fully, so the prior sees one full match in n-1
    # references, while the own-line accuracy only gets the lines the two bodies share
    assert s.loc[("python_only", "php", "line_acc_prior"), "value"] > s.loc[("python_only", "php", "line_acc"), "value"]
    assert s.loc[("shared", "php", "line_acc"), "value"] == 1.0
    assert s.loc[("shared", "php", "line_acc_prior"), "value"] < 1.0
    assert s.loc[("control", "python", "line_acc_prior"), "value"] == 0.0


def test_item_rows_agree_with_the_summary(shifted_evaluation, splits):
    import pandas as pd

    from lensprobe.babel.rows import item_rows, summary_rows

    ev, by_split = shifted_evaluation
    table = pd.DataFrame(ev.rows())
    items = item_rows(table)
    summary = summary_rows(table)
    assert len(summary) + len(items) == len(table)
    assert set(summary["identifier"]) == {"shared", "python_only", "target_only", "control"}
    assert (items["n"] == 1).all() and items["metric"].isin(["line_acc", "exact_match", "line_acc_prior"]).all()
    assert not (table["metric"] == "pass@1").any()  # not executed: no pass@1 rows at all
    for (split, language), group in by_split.items():
        ids = {f"{split}:{it.concept.name}" for it in group}
        got = items[(items["split"] == split) & (items["language"] == language)]
        assert set(got["identifier"]) == ids
        for metric in ("line_acc", "exact_match", "line_acc_prior"):
            per_item = got[got["metric"] == metric]
            # the prior needs another concept of the same domain in the split; the rest: every item
            domains = collections.Counter(it.concept.domain for it in group)
            expected = sum(n for n in domains.values() if n > 1) if metric == "line_acc_prior" else len(group)
            assert len(per_item) == expected
            row = summary[(summary["identifier"] == split) & (summary["language"] == language)
                          & (summary["metric"] == metric)]
            assert row["value"].item() == pytest.approx(per_item["value"].mean())
            assert row["n"].item() == expected


def test_body_prior_compares_with_the_other_bodies_of_the_same_prompt_shape():
    from lensprobe.babel.evaluation import body_prior

    refs = [["    a", "    b"], ["    a", "    c"], ["    x", "    y"]]
    gens = [["    a", "    c"], ["    a", "    b"], ["    x", "    y"]]
    assert body_prior(gens, refs) == [0.5, 0.5, 0.0]
    got = body_prior(gens, refs, groups=["list", "list", "str"])
    assert got[:2] == [1.0, 1.0] and np.isnan(got[2])
    with pytest.raises(ValueError, match="2 groups for 3"):
        body_prior(gens, refs, groups=["list", "list"])
