"""The end-to-end demo (the main job): the paper's loop on the synthetic Babel benchmark, on a CPU.

1. a Python base (``babel-base`` recipe) — trained here, or the small one shipped with lensprobe
   (``--quick``);
2. continual pre-training on PHP with a 5% Python admixture (``babel-continual``), one run per seed;
   seed ``k`` also draws the concept splits with seed ``k`` (its own manifest, lens suite and base:
   intervals over seeds then cover the choice of concepts, docs/babel.md);
3. a sweep of every checkpoint: the working-language probe on the generated Babel suite, LAPE on
   held-out PHP / Python tokens, and the Babel evaluation (line accuracy, exact match, sandboxed
   pass@1 per split, Python beside PHP);
4. stage detection on PHP's accuracy on Python-only concepts (the knowledge that can only come
   through Python), supported by the lens' Python share and LAPE counts;
5. Algorithm 1: a recommended PHP token budget, written as a mixture file;
6. figures and a self-contained HTML report.

Outputs in ``OUT``: ``results/`` (parquet sweep table), ``stages.json``, ``recommendation.yaml``,
``figures/*.png|svg``, ``report/index.html``, ``commands.json``, and the runs under ``runs/``.
"""
from __future__ import annotations

import json
import shlex
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd

from lensprobe.analysis.fit import BabelRun, recommend_tokens, write_mixture
from lensprobe.analysis.fit.runs import read_jsonl
from lensprobe.analysis.stages import detect_stages
from lensprobe.babel.corpus import babel_corpus
from lensprobe.babel.suite import write_babel_suite
from lensprobe.checkpoints import CheckpointSeries
from lensprobe.files import atomic_write_json, atomic_write_text
from lensprobe.lape.inputs import LapeInputs
from lensprobe.present import figures as plot
from lensprobe.present.report import write_report
from lensprobe.present.tuned import plot_lenses
from lensprobe.progress import say
from lensprobe.probes.babel import BabelProbe
from lensprobe.probes.lape import LapeProbe
from lensprobe.probes.working_language import WorkingLanguageProbe
from lensprobe.sweep import read_sweep, run_sweep
from pretrain.config import load_config
from pretrain.train import train

SHIPPED_BASE = Path(__file__).resolve().parent.parent / "pretrain" / "assets" / "babel-base-php"


@dataclass
class DemoSettings:
    """Sizes of one demo variant (tokens per run; the checkpoint cadence; what is evaluated)."""

    train_base: bool = True
    base_python_tokens: int = 5_000_000      # 1,220 steps: the base must know its concepts firmly (line acc ~1)
    base_php_tokens: int = 100_000
    continual_php_tokens: int = 2_400_000
    continual_python_tokens: int = 120_000
    snapshot_every: int = 50
    snapshot_log_max: int = 32
    items_per_split: int | None = None       # Babel items evaluated per split (None: all)
    lape_tokens: int = 16_384
    execute: bool = True
    n_boot: int = 500
    tuned_lens_steps: int = 150              # per checkpoint, warm-started from the previous one (docs/tuned-lens.md)
    tuned_lens_rows: int = 32                # fit rows of 128 tokens per language (+ half as many held out)


DEFAULT = DemoSettings()
QUICK = DemoSettings(train_base=False, continual_php_tokens=620_000, continual_python_tokens=31_000,
                     snapshot_every=30, snapshot_log_max=8, items_per_split=20, lape_tokens=8_192, n_boot=300,
                     tuned_lens_steps=30, tuned_lens_rows=16)

BABEL_CORPUS = {"kind": "babel", "target": "php", "seed": 0,
                "splits": {"n_shared": 40, "n_python_only": 40, "n_target_only": 40, "n_control": 40}}


def _log(msg: str) -> None:
    """The demo's phase messages: stderr, beside the bars (docs/engine.md, "Progress and --quiet")."""
    say(f"[demo {time.strftime('%H:%M:%S')}] {msg}")


def _train(recipe: str, out: Path, overrides: list[str], commands: list[str], *,
           log: Callable[[str], None] | None = _log, progress: bool = True) -> Path:

    cmd = shlex.join(["lensprobe", "pretrain", recipe, "--out", str(out), *[x for o in overrides for x in ("--set", o)]])
    commands.append(cmd)
    if log:
        log(f"$ {cmd}")
    cfg = load_config(recipe, overrides=overrides)
    result = train(cfg, out, command=cmd, log=log, progress=progress)
    if getattr(result, "status", "done") == "interrupted":
        raise KeyboardInterrupt(f"training of {out} was interrupted; re-run the demo to resume")
    return out


def _final_checkpoint(run_dir: Path) -> Path:
    ckpts = sorted((p for p in run_dir.glob("checkpoint-*") if p.is_dir()), key=lambda p: int(p.name.split("-")[1]))
    if not ckpts:
        raise FileNotFoundError(f"{run_dir}: no checkpoints")
    return ckpts[-1]


def _corpus_override(stage: str, split_seed: int = 0) -> str:
    return "data.corpus=" + json.dumps({**BABEL_CORPUS, "seed": split_seed, "stage": stage})


def _seed_suffix(split_seed: int) -> str:
    """File-name suffix of split seed ``k``'s outputs (none for seed 0: single-seed outputs keep their names)."""
    return "" if split_seed == 0 else f"-seed{split_seed}"


def base_corpus_spec(checkpoint: str | Path) -> dict[str, Any] | None:
    """The ``data.corpus`` spec a base checkpoint was trained on: from ``recipe.yaml`` beside it
    (the shipped base) or the run's ``config.yaml`` one level up; None when neither is there."""
    import yaml

    ckpt = Path(checkpoint)
    for path in (ckpt / "recipe.yaml", ckpt.parent / "config.yaml"):
        if path.is_file():
            try:
                cfg = yaml.safe_load(path.read_text()) or {}
            except yaml.YAMLError as exc:
                raise ValueError(f"{path}: not a readable recipe ({exc})") from None
            corpus = (cfg.get("data") or {}).get("corpus") if isinstance(cfg, dict) else None
            if corpus is not None:
                return dict(corpus)
    return None


def check_base(checkpoint: str | Path, splits: Any) -> None:
    """Refuse a base checkpoint that was not trained on ``splits``' concepts (same split seed, sizes
    and concepts): a base must know the Python concepts of the splits it is evaluated on."""

    ckpt = Path(checkpoint)
    spec = base_corpus_spec(ckpt)
    if spec is None:
        raise ValueError(f"base {ckpt}: cannot tell which Babel concepts it was trained on (no recipe.yaml beside "
                         f"it, no config.yaml in {ckpt.parent}); pass a checkpoint of a babel-base run")
    if spec.get("kind") != "babel":
        raise ValueError(f"base {ckpt}: trained on data.corpus.kind={spec.get('kind')!r}, not a Babel corpus")
    try:
        theirs = babel_corpus(**{**{k: v for k, v in spec.items() if k != "kind"}, "stage": "base"}).splits
    except ValueError as exc:
        raise ValueError(f"base {ckpt}: its corpus spec does not build: {exc}") from None
    if theirs.manifest() != splits.manifest():
        raise ValueError(
            f"base {ckpt}: trained on Babel split seed {theirs.seed} (sizes {_sizes(theirs)}), but this run "
            f"evaluates split seed {splits.seed} (sizes {_sizes(splits)}); its Python concepts are not the "
            f"run's. Give a base trained with data.corpus.seed={splits.seed}, or none (the demo trains one)")


def _sizes(splits: Any) -> str:
    return (f"shared {len(splits.shared)}, python_only {len(splits.python_only)}, control {len(splits.control)}, "
            + ", ".join(f"target_only[{t}] {len(v)}" for t, v in splits.target_only.items()))


def _shipped_tokens() -> tuple[int, int] | None:
    """(python, php) tokens of the shipped base's recipe (bases the quick demo trains for split
    seeds > 0 get the same)."""
    import yaml

    path = SHIPPED_BASE / "recipe.yaml"
    if not path.is_file():
        return None
    tokens = ((yaml.safe_load(path.read_text()) or {}).get("data") or {}).get("tokens") or {}
    if "python" in tokens and "php" in tokens:
        return int(tokens["python"]), int(tokens["php"])
    return None


def performance_curve(table: pd.DataFrame, *, language: str, split: str, metric: str = "line_acc"
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(steps, mean, 95% half-width) of a Babel metric: across seeds when there are several runs
    (Student-t with runs - 1 degrees of freedom: few seeds, wide intervals), else from the bootstrap
    interval rows."""
    sel = table[(table["probe"] == "babel") & (table["language"] == language) & (table["identifier"] == split)]
    main = sel[sel["metric"] == metric]
    per_run = main.groupby(["step", "run"])["value"].mean().unstack("run")
    steps = per_run.index.to_numpy(float)
    mean = per_run.mean(axis=1).to_numpy(float)
    if per_run.shape[1] > 1:
        from scipy import stats

        k = per_run.count(axis=1).to_numpy(float)  # runs with a value at each step
        with np.errstate(invalid="ignore"):
            t = stats.t.ppf(0.975, k - 1)  # NaN where fewer than two runs
        half = t * per_run.std(axis=1, ddof=1).to_numpy(float) / np.sqrt(k)
    else:
        lo = sel[sel["metric"] == f"{metric}_lo"].groupby("step")["value"].mean().reindex(per_run.index)
        hi = sel[sel["metric"] == f"{metric}_hi"].groupby("step")["value"].mean().reindex(per_run.index)
        half = ((hi - lo) / 2).to_numpy(float)
    return steps, mean, half


def support_curve(table: pd.DataFrame, steps: np.ndarray, *, probe: str, metric: str, language: str | None = None,
                  identifier_prefix: str | None = None, layer_none: bool = True) -> np.ndarray:
    sel = table[(table["probe"] == probe) & (table["metric"] == metric)]
    if language is not None:
        sel = sel[sel["language"] == language]
    if identifier_prefix is not None:
        sel = sel[sel["identifier"].fillna("").str.startswith(identifier_prefix)]
    if layer_none:
        sel = sel[sel["layer"].isna()]
    return sel.groupby("step")["value"].mean().reindex(steps).to_numpy(float)


def run_demo(out: str | Path, *, quick: bool = False, seeds: int = 1, settings: DemoSettings | None = None,
             base: str | Path | Sequence[str | Path] | None = None,
             log: Callable[[str], None] | None = _log, progress: bool = True) -> dict[str, Any]:
    """Run the whole loop into ``out`` (re-running resumes: training and sweep pick up where they stopped).

    Seed ``k`` trains its continual run with seed ``k`` on the concept splits of split seed ``k``,
    from a base that knows those splits' Python concepts. ``base``: one or more base checkpoints,
    each used for the split seed its recipe names (refused when that seed is not run or its
    concepts differ); seeds without a given base use the shipped base (split seed 0 with
    ``train_base=False``) or train one (``runs/base``, ``runs/base-seed<k>``).

    ``log`` receives the phase messages (default: stderr, timestamped; None: none); ``progress``
    draws the bars of training (steps) and of the sweep (checkpoints) on stderr."""

    if seeds < 1:
        raise ValueError(f"seeds must be >= 1, got {seeds}")
    if not isinstance(progress, bool):
        raise ValueError(f"progress must be a bool, got {progress!r}")
    if log is None:
        def log(msg: str) -> None:  # quiet: no phase messages
            return None
    s = settings or (QUICK if quick else DEFAULT)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    commands: list[str] = [shlex.join(["lensprobe", "demo", "--out", str(out)] + (["--quick"] if quick else [])
                                      + (["--seeds", str(seeds)] if seeds != 1 else []))]
    timings: dict[str, float] = {}

    # the benchmark's splits per seed (seed k: split seed k, the recipes' sizes), their lens suites
    split_seeds = list(range(seeds))
    all_splits, suite_paths, split_files = {}, {}, {}
    for k in split_seeds:
        all_splits[k] = babel_corpus(**{**{key: v for key, v in BABEL_CORPUS.items() if key != "kind"}, "seed": k},
                                     stage="continual").splits
        split_files[k] = all_splits[k].save(out / f"babel_splits{_seed_suffix(k)}.json")
        suite_paths[k] = write_babel_suite(all_splits[k], out / f"babel_php{_seed_suffix(k)}.yaml", target="php")

    # 1. the Python bases: one per split seed --------------------------------------------------
    t = time.perf_counter()
    log("phase 1/6: the Python base" + ("s" if seeds > 1 else ""))
    given: dict[int, Path] = {}
    for b in ([] if base is None else [base] if isinstance(base, (str, Path)) else list(base)):
        ckpt = Path(b)
        if not (ckpt / "config.json").is_file():
            raise FileNotFoundError(f"base {ckpt}: not a checkpoint directory (no config.json)")
        spec = base_corpus_spec(ckpt)
        if spec is None or spec.get("kind") != "babel":
            check_base(ckpt, all_splits[0])  # raises, naming the reason
        spec_seed = spec.get("seed", 0)
        if spec_seed not in all_splits:
            raise ValueError(f"base {ckpt}: trained on Babel split seed {spec_seed!r}, but this run uses split "
                             f"seeds {split_seeds} (seed k uses split seed k)")
        check_base(ckpt, all_splits[spec_seed])
        if spec_seed in given:
            raise ValueError(f"bases {given[spec_seed]} and {ckpt}: both for split seed {spec_seed}")
        given[spec_seed] = ckpt
    shipped = _shipped_tokens() if not s.train_base else None
    base_ckpts: dict[int, Path] = {}
    for k in split_seeds:
        if k in given:
            base_ckpts[k] = given[k]
            log(f"base (split seed {k}): the given checkpoint {given[k]}")
        elif not s.train_base and k == 0:
            if not (SHIPPED_BASE / "model.safetensors").exists():
                raise FileNotFoundError(f"the shipped base checkpoint is missing at {SHIPPED_BASE}; run the demo "
                                        "without --quick (it trains one) or regenerate it (see pretrain/assets/README.md)")
            check_base(SHIPPED_BASE, all_splits[0])
            base_ckpts[k] = SHIPPED_BASE
            log(f"base (split seed 0): the shipped babel-base checkpoint {SHIPPED_BASE}")
        else:  # the demo's base sizes; a quick run matches the shipped base's
            py_tokens, php_tokens = shipped or (s.base_python_tokens, s.base_php_tokens)
            base_dir = _train("babel-base", out / "runs" / f"base{_seed_suffix(k)}",
                              [_corpus_override("base", k), f"data.tokens.python={py_tokens}",
                               f"data.tokens.php={php_tokens}", "snapshots.schedule=every",
                               "snapshots.every=1000000"], commands, log=log, progress=progress)
            base_ckpts[k] = _final_checkpoint(base_dir)
            check_base(base_ckpts[k], all_splits[k])
    base_ckpt = base_ckpts[0]
    base_meta = json.loads((base_ckpt / "checkpoint.json").read_text()) if (base_ckpt / "checkpoint.json").exists() else {}
    eta_python = int((base_meta.get("tokens_by_language") or {}).get("python") or s.base_python_tokens)
    timings["base"] = time.perf_counter() - t

    # 2. continual runs ----------------------------------------------------------------------
    t = time.perf_counter()
    log(f"phase 2/6: continual pre-training on PHP ({seeds} run{'s' if seeds > 1 else ''})")
    run_dirs = []
    for seed in split_seeds:
        run_dir = _train("babel-continual", out / "runs" / f"php-seed{seed}",
                         [_corpus_override("continual", seed), f"model.init_from={base_ckpts[seed]}", f"seed={seed}",
                          f"data.tokens.php={s.continual_php_tokens}", f"data.tokens.python={s.continual_python_tokens}",
                          f"snapshots.every={s.snapshot_every}", f"snapshots.log_max={s.snapshot_log_max}"],
                         commands, log=log, progress=progress)
        run_dirs.append(run_dir)
    timings["continual"] = time.perf_counter() - t

    # 3. sweep -------------------------------------------------------------------------------------
    t = time.perf_counter()
    log("phase 3/6: the probes over every checkpoint (working language through the logit and a tuned lens, LAPE, "
        "Babel evaluation)")
    split_names = ("shared", "python_only", "target_only", "control")
    for seed, run_dir in zip(split_seeds, run_dirs):
        splits, suite_path = all_splits[seed], suite_paths[seed]
        series = CheckpointSeries(run_dir, run=run_dir.name)
        lape_inputs = LapeInputs.from_token_store(run_dir / "tokens", ["python", "php"], split="val",
                                                  tokens_per_language=s.lape_tokens)
        probes = [
            # Eq.1 on the prompts the model generates (the paper's rule) and, beside it, on all prompts
            WorkingLanguageProbe(str(suite_path), batch_size=64, prompts=("generated", "all")),
            # the same prompts through a tuned lens fitted on the run's val tokens (metrics *_tuned_lens)
            WorkingLanguageProbe(str(suite_path), batch_size=64, prompts=("generated", "all"), lens="tuned",
                                 lens_steps=s.tuned_lens_steps, lens_rows=s.tuned_lens_rows),
            LapeProbe(lape_inputs),
            BabelProbe(splits, languages=("python", "php"), split_names=split_names, execute=s.execute,
                       n_boot=s.n_boot, limit=s.items_per_split),
        ]
        commands.append(f"lensprobe sweep {run_dir} --out {out} "
                        f"--probe working_language:suite={suite_path},prompts=generated+all "
                        f"--probe working_language:suite={suite_path},prompts=generated+all,lens=tuned,"
                        f"lens_steps={s.tuned_lens_steps},lens_rows={s.tuned_lens_rows} "
                        f"--probe lape:tokens={run_dir / 'tokens'} --probe babel:splits={split_files[seed]}")
        res = run_sweep(series, probes, out_dir=out, log=log, progress=progress)
        log(f"sweep {run_dir.name}: {len(res.computed)} computed, {len(res.skipped)} already done, "
            f"{len(res.failed)} failed in {res.seconds:.0f}s")
        if res.failed:
            raise RuntimeError(f"sweep failed on {res.failed}")
    table = read_sweep(out)
    timings["sweep"] = time.perf_counter() - t

    # 4. stages -------------------------------------------------------------------------------------
    log("phase 4/6: stages")
    steps, perf, half = performance_curve(table, language="php", split="python_only")
    _, py_perf, _ = performance_curve(table, language="python", split="python_only")
    _, control, _ = performance_curve(table, language="php", split="control")
    _, prior, _ = performance_curve(table, language="php", split="python_only", metric="line_acc_prior")
    support = {
        "python_side_line_acc": py_perf,
        "php_control_line_acc": control,
        "php_body_prior_line_acc": prior,
        # Eq.1 pooled over the python_only split's prompts that the model generates (NaN: none kept)
        "lens_python_share": support_curve(table, steps, probe="working_language", metric="eq1_python_share",
                                           identifier_prefix="python_only:*"),
        "lape_python_neurons": support_curve(table, steps, probe="lape", metric="n_neurons", language="python"),
        "lape_php_neurons": support_curve(table, steps, probe="lape", metric="n_neurons", language="php"),
    }
    window = min(5, max(1, len(steps) // 3))  # smoothing window, shared by stages and Algorithm 1
    stage = detect_stages(steps, perf, interval=half, language="php", support=support, window=window)
    stages = {"php": stage.to_dict()}
    atomic_write_json(out / "stages.json", stages)
    log("stages (php, Python-only line accuracy): " + (", ".join(
        f"{x.name} {x.start_step:g}-{x.end_step:g}" for x in stage.stages) or "none") +
        ("" if not stage.notes else " | " + "; ".join(stage.notes)))

    # 5. recommendation ------------------------------------------------------------------------------
    log("phase 5/6: the data-mix recommendation (Algorithm 1)")
    recommendation: dict[str, Any]
    try:
        # performance: PHP completions of every item of the splits the Python base knows (python_only +
        # shared, all runs); Eq.2: the first run's held-out PHP loss, alpha early in the run (docs/fit.md)
        first = run_dirs[0]
        run_meta = json.loads((first / "run.json").read_text()) if (first / "run.json").exists() else {}
        run = BabelRun(sweep=table[table["probe"] == "babel"], loss_log=read_jsonl(first / "loss.jsonl"),
                       val_log=read_jsonl(first / "val.jsonl") if (first / "val.jsonl").exists() else None,
                       target="php", name=first.name, total_steps=run_meta.get("total_steps"))
        rec = recommend_tokens(run, metric="line_acc", probe="babel", eta_python=eta_python, window=window,
                               identifiers=("python_only", "shared"), n_boot=1000)
        write_mixture(out / "recommendation.yaml", {"python": eta_python, "php": rec.tokens},
                      source=f"lensprobe demo: Algorithm 1 on {first}",
                      notes=(f"best checkpoint step {rec.best_step:g} (line_acc {rec.best_value:.3f}, PHP items of "
                             f"python_only + shared); Python share {rec.share:.3f} (90% CI {rec.share_interval[0]:.3f}-"
                             f"{rec.share_interval[1]:.3f}); php tokens 90% CI {rec.tokens_interval[0]:.4g}-"
                             f"{rec.tokens_interval[1]:.4g}; candidate best steps "
                             f"{', '.join(f'{x:g}' for x in rec.candidates)}; interval over {rec.resampled}; "
                             f"Eq.2 on {rec.loss_source}, alpha={rec.alpha:.4f} (steps {rec.alpha_steps[0]:g}-"
                             f"{rec.alpha_steps[1]:g}), beta={rec.beta:.4f}"))
        recommendation = {"php_tokens": rec.tokens, "python_tokens": eta_python, "share": rec.share,
                          "share_interval": list(rec.share_interval), "best_step": rec.best_step,
                          "candidates": list(rec.candidates), "tokens_interval": list(rec.tokens_interval),
                          "loss_source": rec.loss_source, "alpha_steps": list(rec.alpha_steps),
                          "resampled": rec.resampled}
        log(f"recommendation: php {rec.tokens:,.0f} tokens for python {eta_python:,} (share {rec.share:.3f})")
    except ValueError as exc:  # e.g. share 0: no finite answer — say so, write no mixture
        recommendation = {"error": str(exc)}
        atomic_write_text(out / "recommendation.yaml", f"# no recommendation: {exc}\n")
        log(f"recommendation: none ({exc})")

    # 6. figures and report ---------------------------------------------------------------------------
    log("phase 6/6: figures and report")
    figs = out / "figures"
    plot.save_figure(plot.plot_performance(table, metric="line_acc", language="php", stages=stage), figs / "performance")
    plot.save_figure(plot.plot_working_language(table, stages={"php": stage}), figs / "working_language")
    plot.save_figure(plot_lenses(table, language="php"), figs / "working_language_lenses")
    plot.save_figure(plot.plot_lape_counts(table), figs / "lape_counts")
    plot.save_figure(plot.plot_layer_heatmap(table, language="php"), figs / "lens_heatmap")
    summary = {"quick": quick, "seeds": seeds, "base": str(base_ckpt), "runs": [str(r) for r in run_dirs],
               "bases": {str(k): str(v) for k, v in base_ckpts.items()}, "split_seeds": split_seeds,
               "checkpoints": int(table["checkpoint"].nunique()), "timings_s": timings,
               "recommendation": recommendation, "settings": asdict(s)}
    atomic_write_json(out / "commands.json", commands)
    report = write_report(out, title="lensprobe demo — Python → PHP on the synthetic Babel benchmark", extra=summary)
    timings["total"] = time.perf_counter() - t0
    summary["timings_s"] = timings
    atomic_write_json(out / "summary.json", summary)
    log(f"done in {timings['total']:.0f}s: report {report}")
    return summary
