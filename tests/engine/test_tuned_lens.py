"""Tuned lens: the logit-lens KL against HF hidden states, the tuned-lens objective against an
independent implementation and the ``tuned-lens`` package, the KL goal on the shipped base,
save/load, warm start and determinism."""
from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from lensprobe.checkpoints import weight_hash
from lensprobe.engine.adapters import load_model
from lensprobe.engine.tuned_lens import (CONFIG_FILE, WEIGHTS_FILE, TunedLens, TunedLensError,
                                         TunedLensMismatchError, model_weight_hash, pack_token_rows)
from lensprobe.testing import tiny_model

BASE = Path(__file__).resolve().parents[2] / "pretrain" / "assets" / "babel-base-php"


# --------------------------------------------------------------------------------------------
# helpers


def _random_rows(vocab: int, n: int, t: int, seed: int) -> torch.Tensor:
    return torch.randint(3, vocab, (n, t), generator=torch.Generator().manual_seed(seed))


def _left_padded(ids: torch.Tensor, lengths: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
    """Row i keeps its first lengths[i] tokens, left-padded with id 0."""
    out, mask = torch.zeros_like(ids), torch.zeros_like(ids)
    t = ids.shape[1]
    for i, n in enumerate(lengths):
        out[i, t - n:] = ids[i, :n]
        mask[i, t - n:] = 1
    return out, mask


def _babel_documents(seed: int = 7):
    """Continual-stage Babel documents, PHP and Python alternately (split seed 0, the base's)."""
    from lensprobe.babel.corpus import BabelCorpus, make_splits

    corpus = BabelCorpus(make_splits(seed=0, targets=("php",)), stage="continual", target="php", seed=seed)
    for php, py in zip(corpus.documents("php"), corpus.documents("python")):
        yield php.text
        yield py.text


@pytest.fixture(scope="module")
def base():
    return load_model(BASE)


@pytest.fixture(scope="module")
def babel_rows(base):
    """Disjoint training and held-out rows of one Babel token stream (128 tokens each)."""
    train = pack_token_rows(_babel_documents(), base.tokenizer, length=128, n_rows=64)
    heldout = pack_token_rows(_babel_documents(), base.tokenizer, length=128, n_rows=24, skip_rows=64)
    return train, heldout


def _hf_logit_kl(model, ids: torch.Tensor, mask: torch.Tensor) -> np.ndarray:
    """Mean KL(final || layer l) per real token for l = 1..L-1, from HF ``hidden_states`` of each
    row run unpadded: ``lm_head(ln_f(hidden_states[l]))`` (``hidden_states[-1]`` is already
    normalised and is not used; the final distribution is the model's logits)."""
    n_layers = model.config.num_hidden_layers
    sums, count = np.zeros(n_layers - 1), 0
    norm, head = model.get_decoder().norm if hasattr(model.get_decoder(), "norm") else model.transformer.ln_f, \
        model.get_output_embeddings()
    with torch.no_grad():
        for row, m in zip(ids, mask):
            x = row[m.bool()].unsqueeze(0)
            out = model(input_ids=x, output_hidden_states=True, use_cache=False)
            logp = torch.log_softmax(out.logits[0].double(), -1)
            # hidden_states[-1] is already normalised: decoding it directly gives the logits
            assert torch.allclose(head(out.hidden_states[-1][0]), out.logits[0], atol=1e-5)
            for layer in range(1, n_layers):
                logq = torch.log_softmax(head(norm(out.hidden_states[layer][0])).double(), -1)
                sums[layer - 1] += float((logp.exp() * (logp - logq)).sum())
            count += x.shape[1]
    return sums / count


# --------------------------------------------------------------------------------------------
# the logit-lens KL


@pytest.mark.parametrize("model_type", ["gpt2", "llama"])
def test_logit_kl_equals_hf_hidden_states(model_type):
    model = tiny_model(model_type, seed=3)
    ids = _random_rows(model.config.vocab_size, 4, 12, seed=1)
    ids, mask = _left_padded(ids, [12, 7, 10, 3])
    lens = TunedLens(steps=0).fit(model, ids, attention_mask=mask)  # zero translators: the logit lens
    df = lens.evaluate(model, ids, attention_mask=mask, batch_size=3)
    expected = _hf_logit_kl(model, ids, mask)
    assert list(df["layer"]) == list(range(1, model.config.num_hidden_layers))
    assert (df["n_tokens"] == int(mask.sum())).all()
    np.testing.assert_allclose(df["kl_logit"], expected, rtol=1e-4)
    np.testing.assert_array_equal(df["kl_tuned"], df["kl_logit"])  # an unfitted lens is the logit lens
    assert (df["kl_logit"] > 0).all() and (df["kl_logit_se"] > 0).all()


def test_logit_kl_on_base_equals_hf_hidden_states(base, babel_rows):
    _, heldout = babel_rows
    ids, mask = _left_padded(heldout[:6], [128, 100, 128, 64, 90, 128])
    lens = TunedLens(steps=0).fit(base, ids, attention_mask=mask)
    df = lens.evaluate(base, ids, attention_mask=mask)
    np.testing.assert_allclose(df["kl_logit"], _hf_logit_kl(base.model, ids, mask), rtol=1e-4)


# --------------------------------------------------------------------------------------------
# the objective against independent implementations


def _reference_fit(model, ids: torch.Tensor, *, steps: int, lr: float):
    """Belrose et al. 2023, Eq. 2-3, written from the paper: translator_l(h) = h + A_l h + b_l
    (zero-initialised), loss_l = mean over tokens of KL(p_final || softmax(U LN(translator_l(h_l)))),
    each layer trained by Adam on the same full batch. Uses HF ``output_hidden_states`` (raw for
    l < L). Returns per-layer (A, b) and the loss before each step."""
    n_layers, d = model.config.num_hidden_layers, model.config.hidden_size
    norm, head = model.transformer.ln_f, model.lm_head
    with torch.no_grad():
        out = model(input_ids=ids, output_hidden_states=True, use_cache=False)
    logp = torch.log_softmax(out.logits, -1)
    translators = [torch.nn.Linear(d, d) for _ in range(n_layers - 1)]
    for tr in translators:
        torch.nn.init.zeros_(tr.weight)
        torch.nn.init.zeros_(tr.bias)
    opts = [torch.optim.Adam(tr.parameters(), lr=lr) for tr in translators]
    losses = []
    for _ in range(steps):
        row = []
        for layer, (tr, opt) in enumerate(zip(translators, opts), start=1):
            h = out.hidden_states[layer]
            logq = torch.log_softmax(head(norm(h + tr(h))), -1)
            loss = (logp.exp() * (logp - logq)).sum(-1).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            row.append(float(loss.detach()))
        losses.append(row)
    return [(tr.weight.detach(), tr.bias.detach()) for tr in translators], np.array(losses)


@pytest.fixture
def frozen_tiny():
    model = tiny_model("gpt2", seed=5)
    for p in model.parameters():
        p.requires_grad_(False)
    return model


def test_fit_matches_reference_implementation(frozen_tiny):
    model = frozen_tiny
    ids = _random_rows(model.config.vocab_size, 6, 16, seed=2)
    steps, lr = 25, 1e-2
    ref, ref_losses = _reference_fit(model, ids, steps=steps, lr=lr)
    lens = TunedLens(steps=steps, lr=lr, batch_size=6, schedule="constant").fit(model, ids)
    ours = lens.history_.pivot(index="step", columns="layer", values="kl").to_numpy()
    np.testing.assert_allclose(ours, ref_losses, rtol=1e-5, atol=1e-7)
    assert ours[-1].sum() < 0.5 * ours[0].sum()  # it did learn
    for j, (a, b) in enumerate(ref):
        torch.testing.assert_close(lens.weight_[j], a, rtol=1e-4, atol=1e-6)
        torch.testing.assert_close(lens.bias_[j], b, rtol=1e-4, atol=1e-6)
    # the translator maps as the reference does: h + A h + b
    h = torch.randn(3, 5, model.config.hidden_size)
    torch.testing.assert_close(lens.transform(1, h), h + h @ ref[0][0].T + ref[0][1], rtol=1e-4, atol=1e-5)


def test_fit_matches_tuned_lens_package(frozen_tiny, monkeypatch):
    """The ``tuned-lens`` package (0.2.0, installed with --no-deps): its TunedLens module, its
    training loop's KL loss (scripts/train_loop.py) and plain Adam, no clipping or schedule."""
    tl_surgery = pytest.importorskip("tuned_lens.model_surgery")
    from tuned_lens.nn.lenses import TunedLens as PackageLens

    # tuned-lens 0.2 probes transformer_lens.HookedTransformer, which TransformerLens 4 removed
    monkeypatch.setattr(tl_surgery, "_transformer_lens_available", False)
    model = frozen_tiny
    ids = _random_rows(model.config.vocab_size, 6, 16, seed=4)
    steps, lr = 20, 1e-2
    pkg = PackageLens.from_model(model)
    translators = list(pkg.layer_translators)[1:]  # index 0 is the embedding output: not ours
    opt = torch.optim.Adam([p for t in translators for p in t.parameters()], lr=lr)
    with torch.no_grad():
        out = model(input_ids=ids, output_hidden_states=True, use_cache=False)
    labels = out.logits.log_softmax(-1)
    pkg_losses = []
    for _ in range(steps):
        opt.zero_grad()
        row = []
        for i, h in enumerate(out.hidden_states[:-1]):
            if i == 0:
                continue
            loss = torch.sum(labels.exp() * (labels - pkg(h, idx=i).log_softmax(-1)), dim=-1).mean()
            loss.backward()
            row.append(float(loss.detach()))
        opt.step()
        pkg_losses.append(row)
    lens = TunedLens(steps=steps, lr=lr, batch_size=6, schedule="constant").fit(model, ids)
    ours = lens.history_.pivot(index="step", columns="layer", values="kl").to_numpy()
    np.testing.assert_allclose(ours, np.array(pkg_losses), rtol=1e-5, atol=1e-7)
    for j, t in enumerate(translators):
        torch.testing.assert_close(lens.weight_[j], t.weight.detach(), rtol=1e-4, atol=1e-6)
        torch.testing.assert_close(lens.bias_[j], t.bias.detach(), rtol=1e-4, atol=1e-6)
    with torch.no_grad():  # the same translator in both conventions maps a state the same way
        translators[1].weight.copy_(lens.weight_[1])
        translators[1].bias.copy_(lens.bias_[1])
    h = torch.randn(2, 4, model.config.hidden_size)
    torch.testing.assert_close(lens.transform(2, h), pkg.transform_hidden(h, 2), rtol=1e-6, atol=1e-6)


# --------------------------------------------------------------------------------------------
# the KL goal on the shipped base (held-out Babel text)

#: the default test's fit: ~30-60 s on one core
GOAL_FIT = dict(steps=60, lr=1e-2, batch_size=8)


def test_rows_are_disjoint(babel_rows):
    train, heldout = babel_rows
    assert not any(torch.equal(a, b) for a in train for b in heldout)
    assert train.shape == (64, 128) and heldout.shape == (24, 128)


@pytest.fixture(scope="module")
def base_lens(base, babel_rows):
    return TunedLens(**GOAL_FIT).fit(base, babel_rows[0], description="babel continual php+python, seed 7, rows 0-63")


def test_tuned_kl_at_most_half_the_logit_kl_on_base(base, babel_rows, base_lens):
    _, heldout = babel_rows
    lens = base_lens
    df = lens.evaluate(base, heldout)
    assert list(df["layer"]) == [1, 2, 3]
    # the logit lens reads little before the last layer, and less the earlier the layer
    assert df["kl_logit"].is_monotonic_decreasing and (df["kl_logit"] > 0.5).all()
    assert (df["kl_tuned"] <= 0.5 * df["kl_logit"]).all(), df.to_string()
    assert lens.data_["n_rows"] == 64 and lens.data_["description"].startswith("babel")


@pytest.mark.slow
def test_tuned_kl_on_base_reaches_the_prototype(base):
    """A bigger fit (256 training rows, 300 steps of 16 rows) against the prototype's held-out
    ratios (<= 0.28x the logit-lens KL at every layer, docs/engine.md "Tuned lens")."""
    train = pack_token_rows(_babel_documents(), base.tokenizer, length=128, n_rows=256)
    heldout = pack_token_rows(_babel_documents(), base.tokenizer, length=128, n_rows=64, skip_rows=256)
    lens = TunedLens(steps=300, lr=3e-3, batch_size=16).fit(base, train)
    df = lens.evaluate(base, heldout)
    assert (df["kl_tuned"] <= 0.28 * df["kl_logit"]).all(), df.to_string()


# --------------------------------------------------------------------------------------------
# warm start across checkpoints


def _continual_copy(lm, *, steps: int, lr: float = 1e-3):
    """A neighbouring checkpoint: the base after ``steps`` AdamW steps of continual training on
    8 PHP rows a step (corpus seed 0: not the stream the lens is fitted or evaluated on)."""
    rows = pack_token_rows((d for d in _babel_documents(seed=0)), lm.tokenizer, length=128, n_rows=16 * steps)
    neighbour = copy.deepcopy(lm)
    model = neighbour.model
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=lr)
    for step in range(steps):
        batch = rows[16 * step:16 * step + 16:2]  # every other row: the PHP documents come first in each pair
        loss = model(input_ids=batch, labels=batch).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    return neighbour


def test_warm_start_needs_fewer_steps(base, babel_rows, base_lens):
    train, heldout = babel_rows
    neighbour = _continual_copy(base, steps=10)
    assert model_weight_hash(neighbour) != base_lens.weight_hash_
    with pytest.raises(TunedLensMismatchError):
        base_lens.evaluate(neighbour, heldout)
    as_is = base_lens.evaluate(neighbour, heldout, check_model=False)
    k = GOAL_FIT["steps"] // 4
    fits = {"warm": TunedLens(**{**GOAL_FIT, "steps": k}).fit(neighbour, train, init=base_lens),
            "cold": TunedLens(**{**GOAL_FIT, "steps": k}).fit(neighbour, train),
            "cold_twice": TunedLens(**{**GOAL_FIT, "steps": 2 * k}).fit(neighbour, train)}
    kl = {name: float(lens.evaluate(neighbour, heldout)["kl_tuned"].mean()) for name, lens in fits.items()}
    # the neighbour moved: its logit-lens KL is not the base's, and the base's lens fits it less well
    base_logit = base_lens.evaluate(base, heldout)["kl_logit"].to_numpy()
    assert np.abs(as_is["kl_logit"].to_numpy() - base_logit).max() > 0.05
    assert as_is["kl_tuned"].mean() > 1.3 * kl["warm"], kl
    # from the neighbour's lens, k steps reach the KL that 2k steps from zero reach (measured: 0.38 vs 0.42)
    assert kl["warm"] <= kl["cold_twice"], kl
    assert kl["cold"] > 1.2 * kl["warm"], kl  # (measured: 0.51 vs 0.38)
    warm = fits["warm"]
    assert warm.init_["weight_hash"] == base_lens.weight_hash_
    assert base_lens.weight_hash_ == model_weight_hash(base)  # init is left as it was


# --------------------------------------------------------------------------------------------
# save / load and the model check


def test_save_load_round_trip(frozen_tiny, tmp_path):
    model = frozen_tiny
    ids = _random_rows(model.config.vocab_size, 8, 16, seed=6)
    lens = TunedLens(steps=5, lr=1e-2, batch_size=4).fit(model, ids, description="random rows")
    path = lens.save(tmp_path / "lens")
    assert (path / CONFIG_FILE).is_file() and (path / WEIGHTS_FILE).is_file()
    back = TunedLens.load(path, model=model)
    assert torch.equal(back.weight_, lens.weight_) and torch.equal(back.bias_, lens.bias_)
    assert back.get_params() == lens.get_params() and back.layers_ == lens.layers_
    assert back.weight_hash_ == lens.weight_hash_ == model_weight_hash(model)
    cfg = json.loads((path / CONFIG_FILE).read_text())
    assert cfg["weight_hash"] == lens.weight_hash_ and cfg["data"]["description"] == "random rows"
    assert cfg["d_model"] == model.config.hidden_size and cfg["layers"] == [1, 2]
    heldout = _random_rows(model.config.vocab_size, 4, 16, seed=7)
    assert back.evaluate(model, heldout).equals(lens.evaluate(model, heldout))
    with pytest.raises(FileExistsError):
        lens.save(path)


def test_mismatched_model_is_refused(frozen_tiny, tmp_path):
    model = frozen_tiny
    ids = _random_rows(model.config.vocab_size, 4, 16, seed=6)
    path = TunedLens(steps=2).fit(model, ids).save(tmp_path / "lens")
    other = tiny_model("gpt2", seed=6)  # same shape, other weights
    with pytest.raises(TunedLensMismatchError, match="weight hash") as err:
        TunedLens.load(path, model=other)
    assert str(path) in str(err.value) and "check_model=False" in str(err.value)
    lens = TunedLens.load(path)
    with pytest.raises(TunedLensMismatchError):
        lens.evaluate(other, ids)
    assert len(lens.evaluate(other, ids, check_model=False)) == 2  # asked for: applied
    deeper = tiny_model("gpt2", seed=6, num_hidden_layers=4)
    with pytest.raises(TunedLensError, match="3-block model"):
        lens.evaluate(deeper, ids, check_model=False)  # cannot be applied at all


def test_damaged_files_are_named(frozen_tiny, tmp_path):
    model = frozen_tiny
    path = TunedLens(steps=1).fit(model, _random_rows(101, 2, 8, seed=1)).save(tmp_path / "lens")
    cfg = json.loads((path / CONFIG_FILE).read_text())
    (path / CONFIG_FILE).write_text(json.dumps({**cfg, "format": "something"}))
    with pytest.raises(TunedLensError, match=f"{CONFIG_FILE}: field 'format'"):
        TunedLens.load(path)
    (path / CONFIG_FILE).write_text(json.dumps({**cfg, "d_model": 16}))
    with pytest.raises(TunedLensError, match=f"{WEIGHTS_FILE}: tensor 'weight' must be float32"):
        TunedLens.load(path)
    (path / WEIGHTS_FILE).unlink()
    with pytest.raises(TunedLensError, match=f"{WEIGHTS_FILE} is missing"):
        TunedLens.load(path)


def test_model_weight_hash_equals_the_checkpoint_hash(base, frozen_tiny, tmp_path):
    assert model_weight_hash(base) == weight_hash([BASE / "model.safetensors"])
    model = copy.deepcopy(frozen_tiny)
    model.save_pretrained(tmp_path / "ckpt")
    before = model_weight_hash(model)
    assert before == weight_hash(sorted((tmp_path / "ckpt").glob("*.safetensors")))
    with torch.no_grad():
        model.transformer.h[0].mlp.c_fc.bias[0] += 1.0  # in place: the cached hash must not be reused
    assert model_weight_hash(model) != before


# --------------------------------------------------------------------------------------------
# arguments


def test_bad_arguments(frozen_tiny):
    model = frozen_tiny
    ids = _random_rows(model.config.vocab_size, 2, 8, seed=1)
    for kw in (dict(steps=-1), dict(lr=0), dict(batch_size=0), dict(schedule="cosine"), dict(weight_decay=-1)):
        with pytest.raises(ValueError):
            TunedLens(**kw)
    with pytest.raises(TunedLensError, match="not fitted"):
        TunedLens().transform(1, torch.zeros(2, model.config.hidden_size))
    lens = TunedLens(steps=1).fit(model, ids)
    with pytest.raises(ValueError, match="no translator"):
        lens.transform(0, torch.zeros(2, model.config.hidden_size))
    h = torch.randn(2, model.config.hidden_size)
    assert lens.transform(3, h) is h  # the last block needs none
    with pytest.raises(ValueError, match="d_model"):
        lens.transform(1, torch.zeros(2, 7))
    with pytest.raises(ValueError, match="token ids must lie"):
        lens.evaluate(model, ids + 1000)
    with pytest.raises(TunedLensError, match="3-block model"):
        TunedLens(steps=1).fit(tiny_model("gpt2", num_hidden_layers=4), ids, init=lens)


def test_fit_is_deterministic_for_a_seed(frozen_tiny):
    model = frozen_tiny
    ids = _random_rows(model.config.vocab_size, 12, 16, seed=8)
    a = TunedLens(steps=6, batch_size=4, seed=1).fit(model, ids)
    b = TunedLens(steps=6, batch_size=4, seed=1).fit(model, ids)
    c = TunedLens(steps=6, batch_size=4, seed=2).fit(model, ids)
    assert torch.equal(a.weight_, b.weight_) and torch.equal(a.bias_, b.bias_)
    assert a.history_.equals(b.history_)
    assert not torch.equal(a.weight_, c.weight_)  # another seed: another row order
    assert all(p.requires_grad for p in tiny_model("gpt2", seed=5).parameters())


def test_fit_leaves_the_model_untouched():
    model = tiny_model("gpt2", seed=9)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    flags = [p.requires_grad for p in model.parameters()]
    TunedLens(steps=3, batch_size=2).fit(model, _random_rows(101, 4, 8, seed=1))
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert [p.requires_grad for p in model.parameters()] == flags
    assert all(p.grad is None for p in model.parameters())
