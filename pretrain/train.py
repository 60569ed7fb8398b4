"""The training loop: one accelerate-driven loop for a CPU, one GPU or many nodes.

Outline (nanoGPT-like)::

    data  = prepare_data(cfg, out)                 # tokenizer + token store + mixture schedule
    model, optimizer = accelerator.prepare(...)    # DDP / FSDP / DeepSpeed from `accelerate launch`
    resume from <out>/resume/state-<step>/ if there is one
    for step in range(start, total_steps):
        batch = schedule.batch(step)               # the GLOBAL batch, a pure function of (seed, step)
        for each micro-batch of this rank: forward, backward (loss / grad_accum)
        clip, set lr, optimizer.step()
        append loss.jsonl; snapshot (+ val.jsonl) on schedule; resume state every N steps / SIGTERM

Every rank draws the same global batch and trains on its own rows, so the data a step sees does not
depend on the number of processes or the accumulation split: a 2-process run and a 1-process run
with ``grad_accum=2`` follow the same trajectory (up to float summation order).
"""
from __future__ import annotations

import contextlib
import json
import math
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
import torch.nn.functional as F

from lensprobe.files import atomic_directory, atomic_write_json, atomic_write_text
from lensprobe.progress import progress_bar, say as _say

from . import config as config_mod
from .config import ConfigError, PretrainConfig
from .corpora import open_corpus
from .mixture import MixtureSchedule
from .models import build_model, load_model, n_params
from .tokenizer import load_tokenizer, tokenizer_hash, train_tokenizer
from .tokens import TokenStore, tokenize_corpus
from .snapshots import (LRSchedule, append_log, latest_resume_state, own_run_dir, prune_resume_states,
                        release_run_dir, snapshot_steps, truncate_log, write_checkpoint)


@dataclass
class PreparedData:
    """What the loop needs from the data half."""

    tokenizer: Any                     # a PreTrainedTokenizerFast (saved into every checkpoint)
    store: Any                         # pretrain.tokens.TokenStore (validation split, bytes per token)
    schedule: Any                      # pretrain.mixture.MixtureSchedule
    tokenizer_hash: str


@dataclass
class TrainResult:
    out: Path
    status: str                        # "completed" | "interrupted" | "stopped"
    step: int
    total_steps: int
    tokens: int
    tokens_by_language: dict[str, int] = field(default_factory=dict)


# ---------------------------------------------------------------------------------- data
def prepare_data(cfg: PretrainConfig, out: Path, *, is_main: bool = True, wait: Callable[[], None] = lambda: None,
                 log: Callable[[str], None] | None = None) -> PreparedData:
    """Tokenizer and token store under ``out`` (made once by the main process, reused on resume);
    ``log`` receives a line before each long step (tokenizer training, tokenization)."""

    budgets = config_mod.budgets(cfg)
    tok_dir, tokens_dir = out / "tokenizer", out / "tokens"
    if cfg.model.init_from is not None:
        tok_source = Path(cfg.model.init_from)
    elif cfg.tokenizer.path is not None:
        tok_source = Path(cfg.tokenizer.path)
    else:
        tok_source = tok_dir
    def corpus():
        try:
            return open_corpus(cfg.data.corpus, languages=cfg.data.languages)
        except (ValueError, OSError) as exc:
            raise ConfigError(f"data.corpus: {exc}") from exc

    if is_main:
        source = None
        if tok_source == tok_dir and not (tok_dir / "tokenizer.json").is_file():
            source = corpus()
            if log:
                log(f"training the tokenizer ({cfg.tokenizer.vocab_size} tokens) into {tok_dir}")
            with atomic_directory(tok_dir, overwrite=True) as tmp:
                train_tokenizer(source, languages=cfg.data.languages, vocab_size=cfg.tokenizer.vocab_size,
                                sample_bytes_per_language=cfg.tokenizer.sample_bytes_per_language,
                                seed=cfg.seed, out_dir=tmp)
        tokenizer = load_tokenizer(tok_source)
        thash = tokenizer_hash(tokenizer)
        if not _store_matches(tokens_dir, thash, cfg):
            source = source or corpus()
            if log:
                log(f"tokenizing the corpus into {tokens_dir}: " + ", ".join(f"{k} {v:,}" for k, v in budgets.items())
                    + " tokens")
            try:
                with atomic_directory(tokens_dir, overwrite=True) as tmp:
                    tokenize_corpus(source, tokenizer, tmp, tokens_per_language=budgets,
                                    validation_tokens_per_language=cfg.data.validation_tokens,
                                    filters=cfg.data.filters)
            except ValueError as exc:
                raise ConfigError(f"data: {exc}") from exc
    wait()
    tokenizer = load_tokenizer(tok_source)
    thash = tokenizer_hash(tokenizer)
    store = TokenStore(tokens_dir)
    _check_repetition(cfg, store, budgets)
    try:
        schedule = MixtureSchedule(store, budgets, cfg.data.context, seed=cfg.seed, max_epochs=cfg.data.max_epochs)
    except ValueError as exc:
        raise ConfigError(f"{_budget_field(cfg)}: {exc}") from exc
    return PreparedData(tokenizer=tokenizer, store=store, schedule=schedule, tokenizer_hash=thash)


def _budget_field(cfg: PretrainConfig, lang: str | None = None) -> str:
    if cfg.data.mixture is not None:
        return f"data.mixture ({cfg.data.mixture})" + (f" tokens.{lang}" if lang else "")
    return "data.tokens" + (f".{lang}" if lang else "")


def _store_matches(tokens_dir: Path, thash: str, cfg: PretrainConfig) -> bool:

    if not tokens_dir.is_dir():
        return False
    try:
        store = TokenStore(tokens_dir)
    except Exception:  # noqa: BLE001 - an unreadable store is rebuilt
        return False
    if store.tokenizer_hash != thash:
        return False
    for lang, budget in config_mod.budgets(cfg).items():
        info = store.manifest.languages.get(lang)
        if info is None:
            return False
        if not (info.exhausted or info.requested_tokens is None or info.requested_tokens >= budget):
            return False         # tokenized for a smaller budget: tokenize again
        if info.validation.tokens < cfg.data.validation_tokens and not info.exhausted:
            return False
    return True


def _check_repetition(cfg: PretrainConfig, store: Any, budgets: dict[str, int]) -> None:
    """A budget may repeat a language's training tokens at most ``data.max_epochs`` times."""
    for lang, budget in budgets.items():
        available = len(store.tokens(lang, "train")) if lang in store.languages else 0
        if budget > cfg.data.max_epochs * available:
            raise ConfigError(
                f"{_budget_field(cfg, lang)}: budget {budget:,} tokens is over the repetition cap "
                f"(data.max_epochs={cfg.data.max_epochs:g} x {available:,} available {lang} tokens)")


def bytes_per_token(store: Any, lang: str) -> float:
    """UTF-8 bytes per token of ``lang``'s validation split (the training split's if none), for bits-per-byte."""
    manifest = store.manifest
    for getter in (lambda: manifest.languages[lang].validation.bytes_per_token,
                   lambda: manifest.bytes_per_token[lang], lambda: manifest["bytes_per_token"][lang]):
        try:
            value = float(getter())
        except (AttributeError, KeyError, TypeError):
            continue
        if math.isfinite(value) and value > 0:
            return value
    raise KeyError(f"token store {getattr(store, 'path', '?')}: no bytes-per-token for {lang!r}")


# ---------------------------------------------------------------------------------- helpers
def _optimizer(model: torch.nn.Module, cfg: PretrainConfig) -> torch.optim.Optimizer:
    """AdamW; no weight decay on biases, norms (1-D tensors)."""
    params = [p for p in model.parameters() if p.requires_grad]
    decay = [p for p in params if p.dim() >= 2]
    no_decay = [p for p in params if p.dim() < 2]
    groups = [{"params": decay, "weight_decay": cfg.optim.weight_decay},
              {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=cfg.optim.lr, betas=tuple(cfg.optim.betas))


def row_losses(model: torch.nn.Module, batch: torch.Tensor) -> torch.Tensor:
    """Mean next-token cross-entropy (nats) of every row of ``batch`` [rows, context+1]."""
    inputs, targets = batch[:, :-1], batch[:, 1:]
    logits = model(input_ids=inputs).logits
    loss = F.cross_entropy(logits.float().reshape(-1, logits.size(-1)), targets.reshape(-1), reduction="none")
    return loss.view(targets.shape).mean(dim=1)


def _source_info(init_from: str | None) -> dict[str, Any]:
    if init_from is None:
        return {"tokens": 0, "tokens_by_language": {}}
    path = Path(init_from) / "checkpoint.json"
    if not path.is_file():
        return {"tokens": 0, "tokens_by_language": {}}
    info = json.loads(path.read_text())
    return {"tokens": int(info.get("tokens", 0)), "tokens_by_language": dict(info.get("tokens_by_language", {}))}


class _StopFlag:
    """Set by SIGTERM: save resume state at the end of the current step and exit."""

    def __init__(self) -> None:
        self.set = False
        self._old = None

    def __enter__(self) -> "_StopFlag":
        try:
            self._old = signal.signal(signal.SIGTERM, self._handle)
        except ValueError:  # not the main thread
            self._old = None
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        self.set = True

    def __exit__(self, *exc: Any) -> None:
        if self._old is not None:
            signal.signal(signal.SIGTERM, self._old)


def _check_deepspeed(accelerator: Any, cfg: PretrainConfig) -> None:
    """Under DeepSpeed the engine accumulates and clips: its config must agree with ``optim``."""
    ds = accelerator.state.deepspeed_plugin.deepspeed_config
    for key, want in (("gradient_accumulation_steps", cfg.optim.grad_accum), ("gradient_clipping", cfg.optim.clip)):
        have = ds.get(key)
        if have not in (None, "auto") and float(have) != float(want):
            field_name = "optim.grad_accum" if key.startswith("gradient_acc") else "optim.clip"
            raise ConfigError(f"{field_name}: {want} differs from the DeepSpeed config's {key}={have}")


def check_resumable(cfg: PretrainConfig, out: Path) -> None:
    """Refuse to continue a run directory whose recorded config differs in a field that matters."""
    import yaml

    recorded = out / "config.yaml"
    if not recorded.is_file():
        return
    old = yaml.safe_load(recorded.read_text()) or {}
    changed = config_mod.differences_that_matter(old, cfg.to_dict())
    if changed:
        details = "; ".join(f"{name}: {_lookup(old, name)!r} -> {_lookup(cfg.to_dict(), name)!r}" for name in changed)
        raise ConfigError(f"{changed[0]}: differs from the run recorded in {recorded} ({details}); "
                          "use a new --out directory or restore the original setting")


def _lookup(data: dict[str, Any], dotted: str) -> Any:
    for key in dotted.split("."):
        data = data.get(key) if isinstance(data, dict) else None
    return data


# ---------------------------------------------------------------------------------- the loop
def train(cfg: PretrainConfig, out: str | Path, *, command: str | None = None, data: PreparedData | None = None,
          stop_after: int | None = None, log: Callable[[str], None] | None = _say,
          progress: bool = True) -> TrainResult:
    """Train (or resume) the run in ``out``. ``stop_after`` ends early (with resume state) at that step.

    ``progress``: a bar on stderr over the steps (loss, tokens/s, ETA; main process only); ``log``
    receives the messages (start, resume, stop; default: stderr), None for none.
    """
    from accelerate import Accelerator, DistributedType, PartialState
    from accelerate.utils import broadcast_object_list, parse_flag_from_env, set_seed

    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    out = Path(out)
    if cfg.threads is not None:
        torch.set_num_threads(cfg.threads)
    # without a GPU, tell accelerate so: it then sets up gloo for a multi-process (torchrun) launch
    on_cpu = parse_flag_from_env("ACCELERATE_USE_CPU") or not torch.cuda.is_available()
    PartialState(cpu=on_cpu)
    bf16 = cfg.precision == "bf16" or (cfg.precision == "auto" and not on_cpu)
    # accelerate's CPU bf16 path up-casts the logits (about 30% slower): autocast explicitly instead
    accelerator = Accelerator(cpu=on_cpu, mixed_precision="bf16" if bf16 and not on_cpu else "no")
    autocast = (lambda: torch.autocast("cpu", dtype=torch.bfloat16)) if bf16 and on_cpu else contextlib.nullcontext
    deepspeed = accelerator.distributed_type == DistributedType.DEEPSPEED
    if deepspeed:
        _check_deepspeed(accelerator, cfg)
    main, rank, world = accelerator.is_main_process, accelerator.process_index, accelerator.num_processes
    if not isinstance(progress, bool):
        raise ValueError(f"progress must be a bool, got {progress!r}")
    say = log if main and log is not None else (lambda msg: None)

    # ---- run directory: refuse incompatible configs; then data (prepared once, reused on resume)
    check_resumable(cfg, out)
    if main:  # one training per run directory; a killed one's hidden temporaries are removed
        own_run_dir(out, log=say)
    if data is None:
        data = prepare_data(cfg, out, is_main=main, wait=accelerator.wait_for_everyone, log=say)
    schedule, tokenizer = data.schedule, data.tokenizer
    _check_repetition(cfg, data.store, config_mod.budgets(cfg))
    batch_size, context, grad_accum = cfg.optim.batch_size, cfg.data.context, cfg.optim.grad_accum
    if batch_size % (world * grad_accum):
        raise ConfigError(f"optim.batch_size: {batch_size} is not divisible by processes x grad_accum "
                          f"= {world} x {grad_accum}")
    rows_per_rank = batch_size // world
    micro = rows_per_rank // grad_accum
    available_steps = schedule.total_steps(batch_size)
    total_steps = cfg.optim.steps or available_steps
    if total_steps <= 0 or total_steps > available_steps:
        raise ConfigError(f"optim.steps: the token budgets hold {available_steps} steps of {batch_size} rows x "
                          f"{context + 1} tokens" + (f", fewer than {total_steps}" if total_steps > 0 else "")
                          + "; raise data.tokens, lower optim.batch_size or optim.steps")
    if main:   # every check passed: record the resolved config and the command
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_text(out / "config.yaml", cfg.to_yaml())
        with open(out / "command.txt", "a", encoding="utf-8") as fh:
            fh.write((command or " ".join(sys.argv)) + "\n")
    accelerator.wait_for_everyone()
    lr_at = LRSchedule(cfg.optim.lr, total_steps, cfg.optim.warmup, cfg.optim.schedule, cfg.optim.min_lr_ratio)
    snaps = set(snapshot_steps(total_steps, schedule=cfg.snapshots.schedule, every=cfg.snapshots.every,
                               log_max=cfg.snapshots.log_max, extra=cfg.snapshots.steps))

    # ---- model and optimizer
    set_seed(cfg.seed)
    special = dict(bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                   pad_token_id=tokenizer.pad_token_id)
    if cfg.model.init_from is not None:
        model = load_model(cfg.model.init_from)
        if model.get_input_embeddings().num_embeddings < len(tokenizer):
            raise ConfigError(f"model.init_from: {cfg.model.init_from} has a vocabulary smaller than its tokenizer")
    else:
        model = build_model(cfg.model, vocab_size=len(tokenizer), context=context, seed=cfg.seed, **special)
    source = _source_info(cfg.model.init_from)
    optimizer = _optimizer(model, cfg)
    model, optimizer = accelerator.prepare(model, optimizer)
    model.train()

    # ---- resume
    start, tokens_by_language = 0, {k: int(v) for k, v in source["tokens_by_language"].items()}
    tokens_offset = source["tokens"]
    found = latest_resume_state(out)
    if found is not None:
        path, trainer = found
        accelerator.load_state(str(path))
        start, tokens_by_language = int(trainer["step"]), {k: int(v) for k, v in trainer["tokens_by_language"].items()}
        say(f"resuming {out} from step {start} ({path.name})")
    if main:
        for name in ("loss.jsonl", "val.jsonl"):
            truncate_log(out / name, max_step=start if found is not None else -1)
        atomic_write_json(out / "run.json", {
            "run": cfg.run.name, "recipe": cfg.run.recipe, "total_steps": total_steps, "snapshot_steps": sorted(snaps),
            "budgets": config_mod.budgets(cfg), "parameters": n_params(accelerator.unwrap_model(model)),
            "global_batch": batch_size, "context": context, "processes": world, "grad_accum": grad_accum,
            "precision": "bf16" if bf16 else "fp32", "tokens_offset": tokens_offset,
            "init_from": cfg.model.init_from, "tokenizer_hash": data.tokenizer_hash})
    accelerator.wait_for_everyone()

    def tokens_total() -> int:
        return tokens_offset + sum(tokens_by_language.values()) - sum(source["tokens_by_language"].values())

    def snapshot(step: int, lr: float) -> None:
        info = {"tokens": tokens_total(), "tokens_by_language": dict(sorted(tokens_by_language.items())),
                "lr": lr, "tokenizer_hash": data.tokenizer_hash, "run": cfg.run.name, "recipe": cfg.run.recipe}
        state_dict = accelerator.get_state_dict(model)       # collective under FSDP / DeepSpeed
        if main:
            unwrapped = accelerator.unwrap_model(model)
            write_checkpoint(out, step, tokenizer=tokenizer, info=info,
                             save_model=lambda d: unwrapped.save_pretrained(str(d), state_dict=state_dict))
        rows = validate(step)
        if main:
            for row in rows:
                append_log(out / "val.jsonl", row)
        accelerator.wait_for_everyone()

    @torch.no_grad()
    def validate(step: int) -> list[dict[str, Any]]:
        model.eval()
        rows = []
        cap = cfg.snapshots.val_max_tokens
        for lang in cfg.data.languages:
            if lang not in data.store.languages:
                continue
            val = data.store.tokens(lang, "val")
            n_seq = (len(val) - 1) // context
            if cap is not None:
                n_seq = min(n_seq, max(1, cap // context))
            if n_seq <= 0:
                continue
            total = 0.0
            for i in range(0, n_seq, micro):
                idx = range(i, min(n_seq, i + micro))
                chunk = torch.stack([torch.from_numpy(val[j * context:(j + 1) * context + 1].astype("int64")) for j in idx])
                with autocast():
                    total += float(row_losses(model, chunk.to(accelerator.device)).sum())
            loss = total / n_seq
            rows.append({"step": step, "tokens": tokens_total(), "language": lang, "loss": loss,
                         "bpb": loss / bytes_per_token(data.store, lang) / math.log(2)})
        model.train()
        return rows

    def save_resume(step: int, lr: float) -> None:
        trainer = {"step": step, "tokens": tokens_total(), "tokens_by_language": tokens_by_language, "lr": lr,
                   "total_steps": total_steps, "processes": world}
        final = out / "resume" / f"state-{step}"
        if main:
            with atomic_directory(final, overwrite=True) as tmp:
                broadcast_object_list([str(tmp)])
                accelerator.save_state(str(tmp), safe_serialization=False)
                accelerator.wait_for_everyone()
                atomic_write_json(tmp / "trainer.json", trainer)
            prune_resume_states(out, cfg.resume.keep)
        else:
            holder = [None]
            broadcast_object_list(holder)
            accelerator.save_state(holder[0], safe_serialization=False)
            accelerator.wait_for_everyone()
        accelerator.wait_for_everyone()

    if start == 0 and 0 in snaps:
        snapshot(0, 0.0)
    if start >= total_steps:
        say(f"{out}: already complete ({total_steps} steps)")
        release_run_dir(out)
        return TrainResult(out, "completed", start, total_steps, tokens_total(), dict(tokens_by_language))

    say(f"training {cfg.run.name}: {total_steps} steps x {batch_size} x {context} tokens, "
        f"{n_params(accelerator.unwrap_model(model)):,} parameters, {world} process(es), "
        f"{'bf16' if bf16 else 'fp32'}")
    status, step, lr = "completed", start, 0.0
    bar = progress_bar(total=total_steps, initial=start, desc=f"train {cfg.run.name}", unit="step",
                       enabled=progress and main)
    with _StopFlag() as stop, bar:
        for step in range(start + 1, total_steps + 1):
            t0 = time.perf_counter()
            lr = lr_at(step - 1)
            for group in optimizer.param_groups:
                group["lr"] = lr
            batch, languages = schedule.batch(step - 1, batch_size=batch_size)
            mine = torch.as_tensor(batch[rank * rows_per_rank:(rank + 1) * rows_per_rank]).to(accelerator.device)
            losses = []
            for k in range(grad_accum):
                sync = k == grad_accum - 1
                with (contextlib.nullcontext() if sync or deepspeed else accelerator.no_sync(model)):
                    with autocast():
                        rl = row_losses(model, mine[k * micro:(k + 1) * micro])
                    # DeepSpeed scales by its own gradient_accumulation_steps and steps at the boundary
                    accelerator.backward(rl.mean() if deepspeed else rl.mean() / grad_accum)
                losses.append(rl.detach())
            if deepspeed:
                grad_norm = model.get_global_grad_norm()
            else:
                grad_norm = accelerator.clip_grad_norm_(model.parameters(), cfg.optim.clip or float("inf"))
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            row_loss = accelerator.gather(torch.cat(losses)).float().cpu()
            elapsed = time.perf_counter() - t0

            by_lang: dict[str, list[float]] = {}
            for lang, value in zip(languages, row_loss.tolist()):
                by_lang.setdefault(lang, []).append(value)
                # a row consumes context + 1 tokens of its language's budget (the mixture's windows)
                tokens_by_language[lang] = tokens_by_language.get(lang, 0) + context + 1
            if main:
                append_log(out / "loss.jsonl", {
                    "step": step, "loss": float(row_loss.mean()),
                    "loss_by_language": {k: sum(v) / len(v) for k, v in sorted(by_lang.items())},
                    "lr": lr, "grad_norm": None if grad_norm is None else float(grad_norm),
                    "tokens": tokens_total(), "tokens_per_s": batch_size * (context + 1) / elapsed})
                bar.set_postfix_str(f"loss {float(row_loss.mean()):.3f}, "
                                    f"{batch_size * (context + 1) / elapsed:,.0f} tok/s", refresh=False)
                bar.update(1)
            if step in snaps:
                snapshot(step, lr)
            stopping = stop.set or (stop_after is not None and step >= stop_after)
            if world > 1:
                flag = torch.tensor([1.0 if stopping else 0.0], device=accelerator.device)
                stopping = bool(accelerator.reduce(flag, reduction="sum").item() > 0)
            if step % cfg.resume.every == 0 or step == total_steps or stopping:
                save_resume(step, lr)
            if stopping and step < total_steps:
                status = "interrupted" if stop.set else "stopped"
                say(f"{status} at step {step}; re-run the same command to resume")
                break
    accelerator.end_training()
    release_run_dir(out)
    return TrainResult(out, status, step, total_steps, tokens_total(), dict(tokens_by_language))
