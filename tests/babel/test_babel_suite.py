"""Generated identifier suites from Babel concepts: prompts, ids, skips, validation, the working-language probe."""
import math
import re
from collections import Counter

import pytest
import torch

from lensprobe.babel.suite import (BabelLensItems, babel_lens_items, babel_suite, parse_babel_identifier,
                                   write_babel_suite)
from lensprobe.suites import (MIN_DISTINCT_PROMPTS, SuiteError, load_suite, suite_from_dict, validate_suite)
from lensprobe.babel.corpus import BabelCorpus
from lensprobe.babel.splits import SPLITS, make_splits
from lensprobe.babel.concepts import render

# What each renderer writes on the return line, per terminal (read off the renderings by hand):
# the text right after the prompt, up to and including the character that follows the identifier.
EXPECTED_NEXT = {
    "php": {"count": "count(", "length": "strlen(", "sum": "array_sum(", "count_char": "substr_count("},
    "csharp": {"count": "Count;", "length": "Length;", "sum": "Sum(", "max": "Max(", "min": "Min(",
               "count_char": "Count("},
    "go": {"count_char": "Count("},
    "cpp": {"count": "size(", "length": "size(", "sum": "accumulate(", "max": "max_element(",
            "min": "min_element("},
}
# the prompt's last line (after the indentation), per terminal
EXPECTED_TAIL = {
    "php": lambda k: "return ",
    "csharp": lambda k: {"count": "return ys.", "sum": "return ys.", "max": "return ys.", "min": "return ys."}.get(
        k, "return t."),
    "go": lambda k: "return strings.",
    "cpp": lambda k: {"count": "return (int)ys.", "length": "return (int)t.", "sum": "return std::",
                      "max": "return *std::", "min": "return *std::"}[k],
}
PYTHON_WORD = {"count": "len", "length": "len", "sum": "sum", "max": "max", "min": "min", "count_char": "count"}
SKIPPED = {"php": {"max", "min"}, "csharp": set(), "go": {"count", "length", "sum", "max", "min"},
           "cpp": {"count_char"}}


@pytest.fixture(scope="module")
def splits():
    return make_splits(seed=3, targets=("php", "csharp", "go", "cpp"), n_shared=30, n_python_only=30,
                       n_target_only=20, n_control=25)


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory):
    from pretrain.tokenizer import train_tokenizer

    s = make_splits(seed=0, n_shared=12, n_python_only=12, n_target_only=12, n_control=12)
    return train_tokenizer(BabelCorpus(s, stage="continual", target="php"), languages=["python", "php"],
                           vocab_size=600, sample_bytes_per_language=40_000,
                           out_dir=tmp_path_factory.mktemp("tok"))


def concepts_of(splits, split, target):
    return splits.split(split, target=target if split == "target_only" else None)


@pytest.mark.parametrize("target", ["php", "csharp", "go", "cpp"])
def test_every_prompt_stops_right_before_the_identifier(splits, target):
    items = babel_lens_items(splits, target=target)
    assert items.items
    by_name = {c.name: c for c in splits.all_concepts()}
    for it in items.items:
        c = by_name[it.concept]
        text = render(c, target).text
        assert it.text == text                                   # prompt + target word + suffix == canonical text
        assert text.startswith(it.prompt)
        assert text[len(it.prompt):].startswith(EXPECTED_NEXT[target][c.terminal.kind])
        assert it.prompt.split("\n")[-1] == "    " + EXPECTED_TAIL[target](c.terminal.kind)
        assert it.prompt.startswith(render(c, target).header + "\n")


@pytest.mark.parametrize("target", ["php", "csharp", "go", "cpp"])
def test_ids_encode_split_and_pair_and_count_one_prompt_per_concept(splits, target):
    items = babel_lens_items(splits, target=target)
    expected = Counter()
    expected_skips = Counter()
    for split in SPLITS:
        for c in concepts_of(splits, split, target):
            k = c.terminal.kind
            if k in SKIPPED[target]:
                expected_skips[(split, k)] += 1
            else:
                word = EXPECTED_NEXT[target][k].rstrip("(;")
                expected[f"{split}:{word}:{PYTHON_WORD[k]}"] += 1
    assert items.counts() == dict(expected)
    for ident in items.counts():
        split, _, _ = parse_babel_identifier(ident)
        assert ident.startswith(split + ":")
    assert Counter({(s["split"], s["terminal"]): s["n"] for s in items.skipped}) == expected_skips
    if target == "php":  # max/min are written the same in PHP and Python
        n_maxmin = sum(1 for s in SPLITS for c in concepts_of(splits, s, "php") if c.terminal.kind in ("max", "min"))
        assert n_maxmin > 0 and items.n_skipped("same identifier as Python") == n_maxmin
    assert len(items.items) + items.n_skipped() == sum(len(concepts_of(splits, s, target)) for s in SPLITS)


def test_generated_suite_loads_by_path_and_validates(splits, tokenizer, tmp_path):
    path = write_babel_suite(splits, tmp_path / "babel_php.yaml", target="php")
    suite = load_suite(path)
    assert suite.language == "php" and suite.min_prompts == 1
    assert validate_suite(path).format() == f"{path}: OK"
    report = validate_suite(path, tokenizer=tokenizer)
    assert report.ok, report.format()
    # every concept renders exactly once, whatever the seed, and prompts are the lens items' prompts
    items = babel_lens_items(splits, target="php")
    want = sorted((it.identifier, it.prompt) for it in items.items)
    for seed in (0, 7):
        got = sorted((i.identifier, i.prompt) for i in suite.render(seed=seed))
        assert got == want
    for i in suite.render(seed=0):
        assert i.completion == render(next(c for c in splits.all_concepts() if c.name == i.template_id), "php").text
    # the in-memory suite is the same suite
    assert babel_suite(splits, target="php").digest() == suite.digest()


def test_min_prompts_is_honest_rather_than_padded(splits, tmp_path):
    small = babel_lens_items(splits, target="php", min_prompts=5)
    full = babel_lens_items(splits, target="php")
    dropped = {k: n for k, n in full.counts().items() if n < 5}
    assert dropped and set(small.counts()) == {k for k, n in full.counts().items() if n >= 5}
    assert small.n_skipped("fewer concepts than min_prompts") == sum(dropped.values())
    suite = small.suite()
    assert suite.min_prompts == 5
    # the validator enforces the suite's min_prompts, and the default of 10 without it
    data = small.to_dict()
    data["identifiers"][0]["templates"] = data["identifiers"][0]["templates"][:3]
    data["identifiers"][0]["n_prompts"] = 5
    with pytest.raises(SuiteError, match=r"identifiers\[0\]: error: only 3 distinct prompts \(need >= 5\)"):
        suite_from_dict(data, name="x")
    del data["min_prompts"]
    with pytest.raises(SuiteError, match=f"must be an integer >= {MIN_DISTINCT_PROMPTS}"):
        suite_from_dict(data, name="x")
    data["min_prompts"] = 0
    with pytest.raises(SuiteError, match="min_prompts: error: must be a positive integer, got 0"):
        suite_from_dict(data, name="x")
    # bundled suites are unchanged (no min_prompts in their content, so their digests are stable)
    assert "min_prompts" not in load_suite("php").to_dict() and load_suite("php").min_prompts == 10


def test_bad_arguments_name_the_field(splits):
    with pytest.raises(ValueError, match="target: expected one of"):
        babel_lens_items(splits, target="python")
    with pytest.raises(ValueError, match="unknown split 'nope'"):
        babel_lens_items(splits, target="php", split_names=["nope"])
    php_only = make_splits(seed=0, targets=("php",), n_shared=4, n_python_only=4, n_target_only=4, n_control=4)
    with pytest.raises(ValueError, match="no target_only concepts for 'csharp'"):
        babel_lens_items(php_only, target="csharp", split_names=["target_only"])
    # by default a target without its own split simply has no target_only identifiers
    assert {parse_babel_identifier(i)[0] for i in babel_lens_items(php_only, target="csharp").counts()} <= \
        {"shared", "python_only", "control"}
    with pytest.raises(ValueError, match="min_prompts"):
        babel_lens_items(splits, target="php", min_prompts=0)
    empty = BabelLensItems("php", 0, ("shared",))
    with pytest.raises(ValueError, match="every concept was skipped"):
        empty.to_dict()
    with pytest.raises(ValueError, match="not a Babel suite identifier"):
        parse_babel_identifier("count")


def test_working_language_probe_groups_rows_by_split(tokenizer):
    """The probe runs on the generated suite with a tiny random gpt2 of the trained tokenizer's vocab."""
    from lensprobe.probes.working_language import working_language
    from lensprobe.testing import tiny_model

    s = make_splits(seed=0, n_shared=12, n_python_only=12, n_target_only=12, n_control=12)
    suite = babel_suite(s, target="php")
    model = tiny_model("gpt2", vocab_size=len(tokenizer), seed=1)
    df = working_language(model, suite, tokenizer=tokenizer, batch_size=8, prompts=("generated", "all"))
    sets = suite.token_sets(tokenizer)
    included = {i for i, ts in sets.items() if not ts.collision and ts.target and ts.reference}
    excluded = set(sets) - included
    per_ident = df[df["identifier"].notna() & ~df["identifier"].str.endswith(":*")]
    assert set(per_ident["identifier"]) == set(sets)
    n_prompts = per_ident[per_ident["metric"] == "n_prompts"].set_index("identifier")["value"].to_dict()
    # independent count: concepts of that split whose terminal gives that pair
    word = {"count": "count", "length": "strlen", "sum": "array_sum", "count_char": "substr_count"}
    for ident in included:
        split, target_word, _ = parse_babel_identifier(ident)
        expected = sum(1 for c in s.split(split, target="php" if split == "target_only" else None)
                       if word.get(c.terminal.kind) == target_word)
        assert n_prompts[ident] == expected > 0
    assert set(per_ident[per_ident["metric"] == "excluded_collision"]["identifier"]) == excluded
    assert {parse_babel_identifier(i)[0] for i in n_prompts} == set(SPLITS)
    # one pooled row set per split (`<split>:*`): its prompts are those of the split's included identifiers
    split_rows = df[df["identifier"].str.endswith(":*", na=False) & (df["metric"] == "n_prompts")]
    assert split_rows.set_index("identifier")["value"].to_dict() == {
        f"{split}:*": sum(n_prompts[i] for i in included if parse_babel_identifier(i)[0] == split)
        for split in {parse_babel_identifier(i)[0] for i in included}}
    # final-layer numbers of one identifier against a manual HF forward of each prompt
    ident = max(included, key=lambda i: n_prompts[i])
    hits, logp = [], []
    for item in suite.render(seed=0, identifiers=[ident]):
        ids = torch.tensor([tokenizer(item.prompt, add_special_tokens=False)["input_ids"]])
        with torch.no_grad():
            logits = model(ids).logits[0, -1].double()
        hits.append(int(logits.argmax()) in sets[ident].target)
        logp.append(float(torch.logsumexp(logits.log_softmax(-1)[sorted(sets[ident].target)], 0)))
    rows = per_ident[per_ident["identifier"] == ident]
    L = model.config.n_layer
    assert rows[rows["metric"] == "final_accuracy"]["value"].item() == pytest.approx(sum(hits) / len(hits))
    final_logp = rows[(rows["metric"] == "logp_target_all_prompts") & (rows["layer"] == L)]["value"].item()
    assert final_logp == pytest.approx(sum(logp) / len(logp), abs=1e-4)
    # the paper's rule: the same mean over the prompts the model generates the identifier on (NaN if none)
    kept_logp = [lp for lp, hit in zip(logp, hits) if hit]
    final_kept = rows[(rows["metric"] == "logp_target") & (rows["layer"] == L)]
    assert final_kept["n"].item() == len(kept_logp)
    if kept_logp:
        assert final_kept["value"].item() == pytest.approx(sum(kept_logp) / len(kept_logp), abs=1e-4)
    else:
        assert math.isnan(final_kept["value"].item())


def test_yaml_is_readable_code(splits, tmp_path):
    path = write_babel_suite(splits, tmp_path / "s.yaml", target="csharp", split_names=["python_only"])
    text = path.read_text()
    assert "min_prompts: 1" in text and "text: |" in text
    assert re.search(r"^      public static int \w+\(", text, re.M)  # code is written as a literal block
    assert all(parse_babel_identifier(i)[0] == "python_only" for i in load_suite(path).identifier_ids)
