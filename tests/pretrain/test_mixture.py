"""Mixture schedules: exact prefix proportions, determinism, rank partition, repetition cap."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pretrain.mixture import MixtureSchedule, interleave


class FakeStore:
    """Token ids that encode (language, position): each row can be traced to its window."""

    def __init__(self, sizes):
        self.languages = list(sizes)
        self._arrays = {lang: np.arange(n, dtype=np.int64) + 1_000_000 * (i + 1)
                        for i, (lang, n) in enumerate(sizes.items())}

    def tokens(self, lang, split="train"):
        return self._arrays[lang]


def _check_prefixes(seq, counts):
    total = sum(counts)
    c = np.zeros(len(counts), dtype=np.int64)
    n = np.array(counts, dtype=np.int64)
    for k, lang in enumerate(seq, 1):
        c[lang] += 1
        assert np.all(c >= (k * n) // total) and np.all(c <= -((-k * n) // total)), (k, c, counts)
    assert list(c) == list(counts)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.integers(1, 400), min_size=1, max_size=6), st.permutations(range(6)))
def test_interleave_is_exact_at_every_prefix(counts, perm):
    order = [i for i in perm if i < len(counts)]
    seq = interleave(counts, order, 0, sum(counts))
    _check_prefixes(seq, counts)
    # computing it in pieces gives the same sequence
    state: dict = {}
    k = sum(counts) // 3
    pieces = np.concatenate([interleave(counts, order, 0, k, state), interleave(counts, order, k, sum(counts), state)])
    assert np.array_equal(pieces, seq)


@settings(max_examples=30, deadline=None)
@given(st.dictionaries(st.sampled_from(["python", "php", "go", "cpp", "csharp"]), st.integers(1, 60),
                       min_size=1, max_size=5), st.integers(0, 3))
def test_schedule_window_languages_are_exact(windows, seed):
    context = 7
    store = FakeStore({lang: 500 for lang in windows})
    sched = MixtureSchedule(store, {lang: n * (context + 1) + 3 for lang, n in windows.items()}, context, seed=seed)
    assert sched.windows == windows and sched.n_windows == sum(windows.values())
    langs = sched.window_languages(0, sched.n_windows)
    order = list(windows)
    _check_prefixes([order.index(x) for x in langs], [windows[x] for x in order])
    stop = min(9, sched.n_windows)
    assert sched.window_languages(min(3, stop), stop) == langs[min(3, stop):stop]


def _sched(seed=0, **kw):
    store = FakeStore({"python": 10_000, "php": 4_000})
    return MixtureSchedule(store, {"python": 6_000, "php": "3k"}, 15, seed=seed, **kw)


def test_batches_are_pure_functions_of_seed_step_rank():
    a, b = _sched(), _sched()
    x1, l1 = a.batch(5, batch_size=4, rank=1, world_size=2)
    a.batch(0, batch_size=4)  # other calls in between change nothing
    x2, l2 = b.batch(5, batch_size=4, rank=1, world_size=2)
    assert x1.dtype.is_floating_point is False and x1.shape == (4, 16)
    assert np.array_equal(x1.numpy(), x2.numpy()) and l1 == l2
    x3, _ = _sched(seed=1).batch(5, batch_size=4, rank=1, world_size=2)
    assert not np.array_equal(x1.numpy(), x3.numpy())


def test_ranks_partition_the_global_batch():
    s = _sched()
    world, bs = 3, 4
    for step in range(s.total_steps(bs, world)):
        parts = [s.batch(step, batch_size=bs, rank=r, world_size=world) for r in range(world)]
        rows = np.concatenate([p[0].numpy() for p in parts])
        langs = sum((p[1] for p in parts), [])
        # the global batch is slots [s*B*W, (s+1)*B*W): the same rows as world_size=1, batch B*W
        whole, whole_langs = s.batch(step, batch_size=bs * world)
        assert np.array_equal(rows, whole.numpy()) and langs == whole_langs
        assert langs == s.window_languages(step * bs * world, (step + 1) * bs * world)


def test_rows_are_whole_windows_and_epochs_cover_every_window():
    s = _sched()
    width = 16
    seen = {"python": [], "php": []}
    for step in range(s.total_steps(8)):
        x, langs = s.batch(step, batch_size=8)
        for row, lang in zip(x.numpy(), langs):
            base = 1_000_000 * (1 if lang == "python" else 2)
            start = int(row[0]) - base
            assert start % width == 0 and np.array_equal(row, base + np.arange(start, start + width))
            seen[lang].append(start // width)
    # python: 6000 // 16 = 375 windows of 625 per epoch -> no repeats
    assert len(seen["python"]) == len(set(seen["python"]))
    # php: 3000 // 16 = 187 windows, 250 per epoch -> no repeats either; epochs recorded
    assert s.epochs() == {"python": pytest.approx(375 * 16 / 10_000), "php": pytest.approx(187 * 16 / 4_000)}


def test_repetition_and_epochs_over_one():
    store = FakeStore({"python": 160})  # 10 windows of 16
    s = MixtureSchedule(store, {"python": 640}, 15)  # 40 windows: 4 epochs exactly
    starts = []
    for step in range(s.total_steps(5)):
        x, _ = s.batch(step, batch_size=5)
        starts += [int(r[0]) - 1_000_000 for r in x.numpy()]
    counts = np.bincount(np.array(starts) // 16, minlength=10)
    assert list(counts) == [4] * 10  # every window exactly once per epoch
    assert s.epochs() == {"python": 4.0}
    with pytest.raises(ValueError, match=r"budget for python \(641 tokens\).*4 epochs.*160 available python"):
        MixtureSchedule(store, {"python": 641}, 15)
    MixtureSchedule(store, {"python": 1000}, 15, max_epochs=8)


def test_validation_errors():
    store = FakeStore({"python": 100})
    with pytest.raises(ValueError, match="language 'go' is not in the token store"):
        MixtureSchedule(store, {"go": 10}, 7)
    with pytest.raises(ValueError, match="less than one window"):
        MixtureSchedule(store, {"python": 5}, 7)
    with pytest.raises(ValueError, match="budget for python"):
        MixtureSchedule(store, {"python": "a lot"}, 7)
    s = MixtureSchedule(store, {"python": 80}, 7)
    assert s.total_steps(2) == 5
    with pytest.raises(IndexError, match="past the schedule"):
        s.batch(5, batch_size=2)
    with pytest.raises(ValueError, match="rank 2 must be < world_size 2"):
        s.batch(0, batch_size=1, rank=2, world_size=2)


def test_tokens_seen_counts_windows_of_the_prefix():
    s = _sched()
    for step in (0, 1, 7, s.total_steps(4)):
        langs = s.window_languages(0, step * 4)
        assert s.tokens_seen(step, 4) == {"python": langs.count("python") * 16, "php": langs.count("php") * 16}


def test_real_token_store(tmp_path, tokenizer):
    from pretrain.corpora import open_corpus
    from pretrain.tokens import TokenStore, tokenize_corpus

    tokenize_corpus(open_corpus("embedded"), tokenizer, tmp_path, tokens_per_language={"python": 6000, "go": 3000})
    store = TokenStore(tmp_path)
    s = MixtureSchedule(store, {"python": 4000, "go": 2000}, 31)
    x, langs = s.batch(0, batch_size=6)
    assert x.shape == (6, 32) and langs.count("python") == 4
    for row, lang in zip(x.numpy(), langs):
        arr = np.asarray(store.tokens(lang))
        starts = [i for i in range(0, len(arr) - 31, 32) if np.array_equal(arr[i:i + 32], row)]
        assert starts, "every row is a window of its language's file"
