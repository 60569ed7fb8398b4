"""Benchmark: fitting and reading a tuned lens on a demo-size checkpoint, against baselines run side by side.

Model: the shipped base (pretrain/assets/babel-base-php: GPT-2, 4 layers, d=128, vocab 2048), fp32.
Data: one Babel token stream (continual stage, target php, split seed 0, corpus seed 7: PHP and
Python documents alternately, EOS after each), 128-token rows; rows 0..N-1 train the lens, the
next rows are held out. KL(final || layer) is in nats per token on the held-out rows.

Parts:

  fit      the prototype's recipe as a plain-torch loop (one layer at a time, 300 steps of 16 rows,
           Adam lr 1e-3, autograd through log_softmax, a forward pass per batch; the baseline; timed
           over --proto-steps steps per layer and scaled to 300, its KL from the same recipe run
           through TunedLens) against ``TunedLens`` with its defaults and variants. The KL goal: at most 1.10x the
           prototype's held-out KL at every layer (and so far below half the logit lens).
  warm     a neighbour checkpoint's lens as the start (``init=``) against a cold start: held-out
           KL after k steps for k in a grid; the steps each needs to reach the cold start's KL at
           the default number of steps. Checkpoints: --run DIR's checkpoint-30 -> checkpoint-60
           when it exists, else the base -> the base after 30 steps of continual training.
  evaluate ``TunedLens.evaluate`` on the held-out rows against a bare forward pass of them.
  base     the shipped base fitted as a sweep fits a checkpoint (the run's val tokens, below), cold.
  series   along --run (default the quick demo run /work/runs/demo13q/runs/php-seed0): the sweep's
           own path (``TunedLensSeries`` on the run's validation tokens, 32 + 16 rows of 128 per
           language, PHP and Python): the fit time of one checkpoint cold and warm; then the
           working-language probe (suite php) over --sweep-steps checkpoints with the logit lens
           against the same sweep with the tuned lens once its translators are cached (results
           removed, cache kept), both from a fresh output directory: the ratio (goal <= 1.5).

Times are process CPU time (user+sys over all threads) and wall time; each fit runs once (a fit is
long enough that repetition noise is small next to the machine's load), the bare forward pass is
the minimum of 5. On a shared machine CPU time is the steadier of the two.

Run:  .venv/bin/python benchmarks/tuned_lens.py [--threads 2] [--run /path/to/run] [--proto-steps 30] [--quick]
"""
from __future__ import annotations

import argparse
import copy
import sys
import time
from pathlib import Path

# benchmarks/pretrain.py would shadow the `pretrain` package when this script's folder is sys.path[0]
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import numpy as np
import pandas as pd
import torch

from lensprobe.engine.adapters import load_model
from lensprobe.engine.tuned_lens import TunedLens, pack_token_rows

ROOT = Path(__file__).resolve().parents[1]
BASE = ROOT / "pretrain" / "assets" / "babel-base-php"
DEFAULT_RUN = Path("/work/runs/demo13q/runs/php-seed0")


def babel_documents(seed: int, languages: tuple[str, ...] = ("php", "python")):
    from lensprobe.babel.corpus import BabelCorpus, make_splits

    corpus = BabelCorpus(make_splits(seed=0, targets=("php",)), stage="continual", target="php", seed=seed)
    streams = [corpus.documents(lang) for lang in languages]
    for docs in zip(*streams):
        for doc in docs:
            yield doc.text


def timed(fn):
    c0, w0 = time.process_time(), time.perf_counter()
    out = fn()
    return out, time.process_time() - c0, time.perf_counter() - w0


def prototype_fit(lm, ids: torch.Tensor, *, steps: int = 300, lr: float = 1e-3, batch_size: int = 16,
                  seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """The prototype's recipe: per layer, zero-initialised ``h + Linear(h)``, Adam, autograd KL
    through log_softmax, the model run (HF hidden states) on every batch."""
    model = lm.model
    n_layers, d = model.config.num_hidden_layers, model.config.hidden_size
    norm, head = model.transformer.ln_f, model.lm_head
    for p in model.parameters():
        p.requires_grad_(False)
    weights, biases = [], []
    for layer in range(1, n_layers):
        tr = torch.nn.Linear(d, d)
        torch.nn.init.zeros_(tr.weight)
        torch.nn.init.zeros_(tr.bias)
        opt = torch.optim.Adam(tr.parameters(), lr=lr)
        gen = torch.Generator().manual_seed(seed)
        for _ in range(steps):
            rows = torch.randint(0, ids.shape[0], (batch_size,), generator=gen)
            with torch.no_grad():
                out = model(input_ids=ids[rows], output_hidden_states=True, use_cache=False)
            logp = torch.log_softmax(out.logits, -1)
            h = out.hidden_states[layer]
            logq = torch.log_softmax(head(norm(h + tr(h))), -1)
            loss = (logp.exp() * (logp - logq)).sum(-1).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
        weights.append(tr.weight.detach().clone())
        biases.append(tr.bias.detach().clone())
    for p in model.parameters():
        p.requires_grad_(True)
    return torch.stack(weights), torch.stack(biases)


def lens_with(lm, ids, weight: torch.Tensor, bias: torch.Tensor) -> TunedLens:
    lens = TunedLens(steps=0).fit(lm, ids[:1])
    lens.weight_, lens.bias_ = weight.float(), bias.float()
    return lens


def part_fit(lm, train, heldout, proto_steps: int) -> pd.DataFrame:
    rows = []
    # the baseline's time: the prototype loop timed over proto_steps steps per layer, scaled to 300
    _, cpu, wall = timed(lambda: prototype_fit(lm, train, steps=proto_steps))
    scale = 300 / proto_steps
    # the baseline's KL: the same recipe (loss, Adam, 300 steps of 16 rows) through TunedLens, which
    # tests/engine/test_tuned_lens.py checks against an independent loop step by step
    proto_lens, cpu_p, wall_p = timed(lambda: TunedLens(steps=300, batch_size=16, lr=1e-3,
                                                        schedule="constant").fit(lm, train))
    base_df = proto_lens.evaluate(lm, heldout)
    logit = base_df["kl_logit"].to_numpy()
    proto = base_df["kl_tuned"].to_numpy()
    rows.append(dict(fit=f"prototype loop (300 steps x 16 rows per layer, Adam 1e-3; timed over {proto_steps})",
                     cpu_s=cpu * scale, wall_s=wall * scale, kl=proto))
    rows.append(dict(fit="TunedLens with the prototype's settings (300 x 16, lr 1e-3 constant)", cpu_s=cpu_p,
                     wall_s=wall_p, kl=proto))
    configs = {
        "TunedLens() defaults (150 x 8 rows, lr 1e-2 linear, zero start)": {},
        "TunedLens(steps=100)": dict(steps=100),
        "TunedLens(start='lstsq', steps=80, lr=3e-3)": dict(start="lstsq", steps=80, lr=3e-3),
        "TunedLens(start='lstsq', steps=0)": dict(start="lstsq", steps=0),
        "TunedLens(cache_bytes=0) (model run every step)": dict(cache_bytes=0),
    }
    for name, kw in configs.items():
        lens, cpu, wall = timed(lambda kw=kw: TunedLens(**kw).fit(lm, train))
        rows.append(dict(fit=name, cpu_s=cpu, wall_s=wall, kl=lens.evaluate(lm, heldout)["kl_tuned"].to_numpy()))
    out = pd.DataFrame(rows)
    out["cpu_vs_proto"] = out["cpu_s"] / out["cpu_s"].iloc[0]
    out["wall_vs_proto"] = out["wall_s"] / out["wall_s"].iloc[0]
    out["kl_vs_proto_max"] = [float(np.max(k / proto)) for k in out["kl"]]
    out["kl_vs_logit_max"] = [float(np.max(k / logit)) for k in out["kl"]]
    out["goal"] = out["kl_vs_proto_max"] <= 1.10
    out["kl"] = [" / ".join(f"{v:.3f}" for v in k) for k in out["kl"]]
    print(f"held-out logit-lens KL per layer: {' / '.join(f'{v:.3f}' for v in logit)} "
          f"(+- {' / '.join(f'{v:.3f}' for v in base_df['kl_logit_se'])}; {int(base_df['n_tokens'][0])} tokens)")
    return out


def continual_copy(lm, steps: int = 30, lr: float = 6e-4, seed: int = 0):
    """The base after ``steps`` of continual training on PHP rows (corpus seed 0: not the held-out stream)."""
    rows = pack_token_rows(babel_documents(0, ("php",)), lm.tokenizer, length=128, n_rows=steps * 8)
    neighbour = copy.deepcopy(lm)
    model = neighbour.model
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=lr)
    torch.manual_seed(seed)
    for step in range(steps):
        batch = rows[step * 8:(step + 1) * 8]
        loss = model(input_ids=batch, labels=batch).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    return neighbour


def part_warm(lm, train, heldout, run: Path, quick: bool) -> tuple[pd.DataFrame, str]:
    a, b = run / "checkpoint-30", run / "checkpoint-60"
    if a.is_dir() and b.is_dir():
        first, second = load_model(a), load_model(b)
        what = f"{a} -> {b}"
    else:
        first, second = lm, continual_copy(lm)
        what = "the base -> the base after 30 continual steps (AdamW 6e-4, 8 PHP rows a step)"
    previous = TunedLens().fit(first, train)
    grid = [0, 5, 10, 20, 40] if quick else [0, 5, 10, 20, 30, 40, 50, 60, 80, 100, 150]
    rows = []
    for k in grid:
        cold, cpu_c, _ = timed(lambda k=k: TunedLens(steps=k).fit(second, train))
        warm, cpu_w, _ = timed(lambda k=k: TunedLens(steps=k).fit(second, train, init=previous))
        kc = cold.evaluate(second, heldout)
        kw = warm.evaluate(second, heldout)
        rows.append(dict(steps=k, kl_cold=kc["kl_tuned"].mean(), kl_warm=kw["kl_tuned"].mean(),
                         kl_cold_layers=" / ".join(f"{v:.3f}" for v in kc["kl_tuned"]),
                         kl_warm_layers=" / ".join(f"{v:.3f}" for v in kw["kl_tuned"]),
                         cpu_cold=cpu_c, cpu_warm=cpu_w, kl_logit=kc["kl_logit"].mean()))
    return pd.DataFrame(rows), what


def part_evaluate(lm, train, heldout) -> pd.DataFrame:
    lens = TunedLens(steps=20).fit(lm, train)

    def forward():
        with torch.inference_mode():
            for i in range(0, heldout.shape[0], lens.batch_size):
                lm.model(input_ids=heldout[i:i + lens.batch_size], use_cache=False)

    forward()
    fwd = min(timed(forward)[1:] for _ in range(5))
    lens.evaluate(lm, heldout, weight_hash=lens.weight_hash_)
    ev = min(timed(lambda: lens.evaluate(lm, heldout, weight_hash=lens.weight_hash_))[1:] for _ in range(3))
    ev_hash = timed(lambda: lens.evaluate(lm, heldout))[1:]
    return pd.DataFrame([
        dict(what="bare forward pass (logits included)", cpu_s=fwd[0], wall_s=fwd[1]),
        dict(what="evaluate (logit + tuned KL at every layer)", cpu_s=ev[0], wall_s=ev[1]),
        dict(what="evaluate incl. the model weight hash (first call)", cpu_s=ev_hash[0], wall_s=ev_hash[1]),
    ]).assign(cpu_vs_forward=lambda d: d["cpu_s"] / d["cpu_s"].iloc[0])


def part_base(lm, run: Path) -> pd.DataFrame:
    """The shipped base fitted as a sweep fits a checkpoint (TunedLensSeries on the run's val tokens), cold."""
    from lensprobe.engine.tuned_series import HeldOutTokens, TunedLensSeries

    tokens = HeldOutTokens.from_token_store(run / "tokens", ["php", "python"], split="val")
    rows = []
    for label, settings in (("defaults (150 steps)", {}), ("the quick demo's 30 steps, 32 rows", {"steps": 30})):
        got, cpu, wall = timed(lambda settings=settings: TunedLensSeries(tokens, settings=settings).lens_for(
            lm, run="base", step=0))
        rows.append(dict(what=f"shipped base, {label}, cold: fit + evaluate", cpu_s=cpu, wall_s=wall,
                         kl_logit=" / ".join(f"{v:.3f}" for v in got.kl["kl_logit"]),
                         kl_tuned=" / ".join(f"{v:.3f}" for v in got.kl["kl_tuned"])))
    return pd.DataFrame(rows)


def part_series(run: Path, steps: list[int]) -> pd.DataFrame:
    import shutil
    import tempfile

    from lensprobe.checkpoints import CheckpointSeries
    from lensprobe.engine.tuned_series import HeldOutTokens, TunedLensSeries
    from lensprobe.probes.registry import make_probe
    from lensprobe.sweep import run_sweep

    rows = []
    tokens = HeldOutTokens.from_token_store(run / "tokens", ["php", "python"], split="val")
    series = CheckpointSeries(run).select(steps=steps)
    lenses = TunedLensSeries(tokens)
    for info, model in series.iter_models():
        got, cpu, wall = timed(lambda: lenses.lens_for(model, run=run.name, checkpoint=info.name, step=info.step))
        rows.append(dict(what=f"fit + evaluate {info.name} ({'warm' if got.init else 'cold'} start)", cpu_s=cpu,
                         wall_s=wall, kl_logit=" / ".join(f"{v:.3f}" for v in got.kl["kl_logit"]),
                         kl_tuned=" / ".join(f"{v:.3f}" for v in got.kl["kl_tuned"])))
    logit_spec = "working_language:suite=php"
    tuned_spec = logit_spec + ",lens=tuned"
    with tempfile.TemporaryDirectory(prefix="bench-tuned-") as tmp:
        out = Path(tmp)

        def sweep(specs, where):
            return run_sweep(CheckpointSeries(run).select(steps=steps), [make_probe(s) for s in specs],
                             out_dir=out / where, progress=False, log=None)

        sweep([tuned_spec], "tuned")  # fills the cache (timed in the rows above)
        shutil.rmtree(out / "tuned" / "results")
        for label, specs, where in (("sweep, logit lens", [logit_spec], "logit"),
                                    ("sweep, tuned lens (translators cached)", [tuned_spec], "tuned"),
                                    ("sweep, logit + tuned lens (translators cached)", [logit_spec, tuned_spec],
                                     "tuned")):
            if (out / where / "results").exists():
                shutil.rmtree(out / where / "results")
            res, cpu, wall = timed(lambda: sweep(specs, where))
            assert res.ok and len(res.computed) == len(steps), res
            rows.append(dict(what=f"{label}, {len(steps)} checkpoints", cpu_s=cpu, wall_s=wall))
    df = pd.DataFrame(rows)
    base = df[df["what"].str.startswith("sweep, logit lens")].iloc[0]
    df["cpu_vs_logit_sweep"] = df["cpu_s"] / base["cpu_s"]
    df["wall_vs_logit_sweep"] = df["wall_s"] / base["wall_s"]
    return df


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--run", type=Path, default=DEFAULT_RUN, help="a run with checkpoint-30 and checkpoint-60")
    parser.add_argument("--train-rows", type=int, default=128)
    parser.add_argument("--heldout-rows", type=int, default=32)
    parser.add_argument("--quick", action="store_true", help="a shorter warm-start grid (a smoke run)")
    parser.add_argument("--proto-steps", type=int, default=30,
                        help="steps per layer the prototype loop is timed over (its time is scaled to 300)")
    parser.add_argument("--parts", default="fit,warm,evaluate,base,series")
    parser.add_argument("--sweep-steps", default="30,60,90,120,150",
                        help="checkpoints of --run the series part sweeps (comma-separated steps)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    pd.set_option("display.width", 250)
    pd.set_option("display.max_colwidth", 80)
    lm = load_model(BASE)
    train = pack_token_rows(babel_documents(7), lm.tokenizer, length=128, n_rows=args.train_rows)
    heldout = pack_token_rows(babel_documents(7), lm.tokenizer, length=128, n_rows=args.heldout_rows,
                              skip_rows=args.train_rows)
    print(f"threads {torch.get_num_threads()}; {args.train_rows} training rows, {args.heldout_rows} held-out rows "
          f"of 128 tokens")
    parts = args.parts.split(",")
    if "fit" in parts:
        print("\n== fit one checkpoint (the shipped base) ==")
        print(part_fit(lm, train, heldout, args.proto_steps).round(3).to_string(index=False))
    if "warm" in parts:
        df, what = part_warm(lm, train, heldout, args.run, args.quick)
        print(f"\n== warm vs cold start: {what} ==")
        print("(held-out KL, mean over layers 1-3; per layer in the *_layers columns)")
        print(df.round(3).to_string(index=False))
        target = float(df.loc[df["steps"] == df["steps"].max(), "kl_cold"].iloc[0])
        need = {col: next((int(s) for s, v in zip(df["steps"], df[col]) if v <= target * 1.001), None)
                for col in ("kl_cold", "kl_warm")}
        print(f"steps to reach the cold start's KL at {int(df['steps'].max())} steps ({target:.3f}): "
              f"cold {need['kl_cold']}, warm {need['kl_warm']}")
    if "evaluate" in parts:
        print("\n== evaluate vs a bare forward pass (held-out rows) ==")
        print(part_evaluate(lm, train, heldout).round(3).to_string(index=False))
    if "base" in parts:
        print(f"\n== the shipped base, fitted on {args.run}'s val tokens as a sweep fits a checkpoint ==")
        print(part_base(lm, args.run).round(3).to_string(index=False))
    if "series" in parts:
        steps = [int(s) for s in args.sweep_steps.split(",")]
        print(f"\n== along {args.run}: TunedLensSeries fits, and a sweep with each lens (steps {steps}) ==")
        print(part_series(args.run, steps).round(3).to_string(index=False))


if __name__ == "__main__":
    main()
