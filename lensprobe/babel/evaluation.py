"""Evaluation on the synthetic Babel benchmark: can a checkpoint write each concept's body?

For every split (shared, python_only, target_only, control) and language, the model completes the
body of a concept function from its header under greedy decoding. Metrics per item:

* ``line_acc`` — share of the canonical body lines reproduced at their position (the informative
  metric at CPU scale, docs/babel.md);
* ``exact_match`` — the whole body reproduced;
* ``pass@1`` — the completed function passes the concept's test cases, executed in lensprobe's
  sandbox (Python and PHP in one isolated program per language; other languages where their
  toolchains are present).

Means come with percentile-bootstrap intervals over items. Two baselines (docs/babel.md, "How to
read the numbers"):

* the ``control`` split (never trained, exchangeable with ``python_only`` by construction): what
  line accuracy a never-seen concept gets;
* the *body prior* ``line_acc_prior``: the same completions scored against the bodies of the
  *other* concepts of their split whose prompt has the same shape (same domain: a list ``xs`` or
  a string ``s`` parameter, the only thing a header tells besides the nonsense name), averaged
  per item: what line accuracy a completion earns against a body the prompt could not tell from
  its own, i.e. generic structure rather than knowledge of the prompted concept.

Python's accuracy on the Python-only split beside the target's tells "the target lost access"
(target falls, Python holds) from "the model forgot" (both fall).

Probe rows: one summary row per split x language x metric (``identifier`` = split, with ``_lo`` /
``_hi`` rows) and one row per item (``identifier`` = ``"<split>:<concept>"``, ``n`` = 1), so that
resampling can run over items; :func:`lensprobe.babel.rows.summary_rows` / :func:`~lensprobe.babel.rows.item_rows` select either kind.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Sequence

import numpy as np
import pandas as pd
import torch

from lensprobe.babel.concepts import checking_program, render
from lensprobe.babel.splits import SPLITS, BabelSplits
from lensprobe.evaluate.assembly import Program
from lensprobe.evaluate.runners import Executor, missing_tools
from lensprobe.evaluate.sandbox import Sandbox
from lensprobe.progress import progress_bar
from pretrain.programs.pipeline import Concept

METRICS = ("line_acc", "exact_match", "pass@1")
#: the body prior: line accuracy of an item's completion against the other same-domain bodies of its split
PRIOR_METRIC = "line_acc_prior"
ITEM_METRICS = (*METRICS, PRIOR_METRIC)


def item_identifier(split: str, concept: str) -> str:
    """The ``identifier`` of a per-item probe row: ``"<split>:<concept>"``."""
    return f"{split}:{concept}"


@dataclass(frozen=True)
class BabelItem:
    """One completion task: write ``concept``'s body in ``language`` after ``prompt``."""

    concept: Concept
    split: str
    language: str
    prompt: str
    reference: tuple[str, ...]
    footer: str

    @property
    def name(self) -> str:
        return self.concept.name


def babel_items(splits: BabelSplits, *, languages: Sequence[str] = ("python", "php"),
                split_names: Sequence[str] = SPLITS, target: str | None = None,
                limit: int | None = None) -> list[BabelItem]:
    """Items for every (split, language). ``target_only`` uses ``target`` (default: the first target);
    ``limit`` keeps the first ``limit`` concepts of each split (the same ones in every language)."""
    if limit is not None and limit < 1:
        raise ValueError(f"limit must be >= 1, got {limit}")
    target = target or splits.targets[0]
    items = []
    for split in split_names:
        concepts = splits.split(split, target=target if split == "target_only" else None)[:limit]
        for language in languages:
            for c in concepts:
                r = render(c, language)
                items.append(BabelItem(c, split, language, r.prompt, r.body, r.footer))
    return items


def extract_body(language: str, completion: str) -> list[str]:
    """The body lines of a completion that starts right after the header (at the header's newline).

    Whatever follows the header on its own line is ignored. Python: lines up to the first non-empty
    line that is not indented. Brace languages: lines up to the closing ``}`` at column 0. Blank
    lines are dropped.
    """
    lines = completion.split("\n")[1:]
    body = []
    for line in lines:
        if language == "python":
            if line.strip() and not line.startswith((" ", "\t")):
                break
        elif line.rstrip() == "}":
            break
        if line.strip():
            body.append(line.rstrip())
    return body


def score_lines(generated: Sequence[str], reference: Sequence[str]) -> tuple[float, bool]:
    """(line accuracy, exact match): positional comparison of right-stripped lines."""
    ref = [r.rstrip() for r in reference]
    hits = sum(1 for i, r in enumerate(ref) if i < len(generated) and generated[i].rstrip() == r)
    exact = hits == len(ref) and len(generated) == len(ref)
    return hits / len(ref), exact


def body_prior(generated: Sequence[Sequence[str]], references: Sequence[Sequence[str]], *,
               groups: Sequence[Any] | None = None) -> list[float]:
    """Per item ``i``: the mean line accuracy of ``generated[i]`` against every *other* reference
    ``references[j]``, ``j != i``, of the same group (``groups[j] == groups[i]``; all items when
    ``groups`` is None); NaN for an item without such a reference. Items are one split in one
    language; ``generated[i]`` answers the prompt of ``references[i]``.

    :func:`evaluate_babel` groups by concept domain: the header shows the parameter (``xs`` or
    ``s``), so a completion of a string concept is only compared with other string bodies —
    otherwise the prior would be lowered by references no completion of that prompt would aim at.
    """
    if len(generated) != len(references):
        raise ValueError(f"{len(generated)} completions for {len(references)} references")
    if groups is not None and len(groups) != len(references):
        raise ValueError(f"{len(groups)} groups for {len(references)} references")
    n = len(references)
    key = list(groups) if groups is not None else [None] * n
    out = []
    for i, g in enumerate(generated):
        others = [j for j in range(n) if j != i and key[j] == key[i]]
        out.append(float(np.mean([score_lines(g, references[j])[0] for j in others])) if others else float("nan"))
    return out


def bootstrap_interval(values: Sequence[float], *, n_boot: int = 1000, level: float = 0.95,
                       seed: int = 0) -> tuple[float, float, float]:
    """(mean, low, high): percentile bootstrap over items."""
    v = np.asarray(values, dtype=float)
    if v.size == 0:
        return (float("nan"),) * 3
    rng = np.random.default_rng(seed)
    means = v[rng.integers(0, v.size, size=(n_boot, v.size))].mean(axis=1)
    alpha = (1 - level) / 2
    return float(v.mean()), float(np.quantile(means, alpha)), float(np.quantile(means, 1 - alpha))


# ------------------------------------------------------------------------------------------ generation

def _ended(language: str, text: str) -> bool:
    """Whether a completion has passed the end of its function body."""
    if language == "python":
        return any(line.strip() and not line.startswith((" ", "\t")) for line in text.split("\n")[1:])
    return "\n}" in text or text.startswith("}")


@torch.inference_mode()
def greedy_complete(model: torch.nn.Module, tokenizer: Any, prompts: Sequence[str], *, max_new_tokens: int,
                    batch_size: int = 32, language: str | None = None, check_every: int = 8,
                    on_batch: Callable[[int], None] | None = None) -> list[str]:
    """Greedy completions, decoded to text.

    A lean loop (left padding, position ids from the mask, KV cache) instead of ``generate``: on
    tiny models the latter's per-step overhead dominates. With ``language`` set, a batch stops
    early once every row has passed the end of its function body (checked every ``check_every``
    tokens); the text after the end is cut by :func:`extract_body` anyway. ``on_batch(n)`` is
    called after each batch of ``n`` prompts (progress).

    The KV cache is passed as ``cache=`` (transformers 5 renamed ``past_key_values``; the old name
    warns once per call) and built with the model's config, so sliding-window layers get theirs.
    """
    from transformers import DynamicCache

    device = next(model.parameters()).device
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    out: list[str] = []
    for i in range(0, len(prompts), batch_size):
        enc = [tokenizer(p, add_special_tokens=False)["input_ids"] for p in prompts[i:i + batch_size]]
        width = max(len(e) for e in enc)
        ids = torch.full((len(enc), width), pad, dtype=torch.long)
        mask = torch.zeros((len(enc), width), dtype=torch.long)
        for r, e in enumerate(enc):
            ids[r, width - len(e):] = torch.tensor(e)
            mask[r, width - len(e):] = 1
        ids, mask = ids.to(device), mask.to(device)
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        cache = DynamicCache(config=model.config)
        step_ids, generated = ids, []
        for t in range(max_new_tokens):
            logits = model(input_ids=step_ids, attention_mask=mask, position_ids=positions, cache=cache,
                           use_cache=True).logits[:, -1]
            nxt = logits.argmax(-1, keepdim=True)
            generated.append(nxt)
            step_ids = nxt
            mask = torch.cat([mask, torch.ones_like(nxt)], dim=1)
            positions = positions[:, -1:] + 1
            if language is not None and (t + 1) % check_every == 0:
                texts = tokenizer.batch_decode(torch.cat(generated, 1).tolist(), skip_special_tokens=True)
                if all(_ended(language, x) for x in texts):
                    break
        rows = torch.cat(generated, 1).tolist() if generated else [[] for _ in enc]
        out.extend(tokenizer.batch_decode(rows, skip_special_tokens=True))
        if on_batch is not None:
            on_batch(len(enc))
    return out


# ------------------------------------------------------------------------------------------ execution

def _isolated_program(language: str, items: Sequence[BabelItem], bodies: dict[str, str]) -> str:
    """One program per language whose concepts are defined in isolation (a syntax error or a crash
    in one completion fails only that concept). Python: ``exec`` per concept; PHP: ``eval``."""
    if language == "python":
        lines = []
        for it in items:
            src = bodies[it.name]
            conds = " and ".join(f"_f({x!r}) == {y!r}" for x, y in it.concept.cases)
            lines.append(
                f"try:\n    _ns = {{}}\n    exec({src!r}, _ns)\n    _f = _ns[{it.name!r}]\n    _ok = {conds}\n"
                f"except BaseException:\n    _ok = False\nprint(('PASS ' if _ok else 'FAIL ') + {it.name!r})\n")
        return "\n".join(lines)
    if language == "php":
        out = ["<?php"]
        for it in items:
            src = bodies[it.name]
            lit = lambda v: json.dumps(v) if not isinstance(v, list) else "[" + ", ".join(map(str, v)) + "]"  # noqa: E731
            conds = " && ".join(f"{it.name}({lit(x)}) === {lit(y)}" for x, y in it.concept.cases)
            php_src = src.replace("\\", "\\\\").replace("'", "\\'")
            out.append(f"try {{ eval('{php_src}'); $ok = {conds}; }} catch (\\Throwable $e) {{ $ok = false; }}\n"
                       f"echo ($ok ? 'PASS ' : 'FAIL ') . '{it.name}' . \"\\n\";")
        return "\n".join(out) + "\n"
    raise ValueError(language)


def execute_items(items: Sequence[BabelItem], completions: Sequence[str], *, executor: Any = None,
                  timeout: float = 20.0) -> list[bool | None]:
    """pass@1 per item through lensprobe's sandbox (``None`` where the language cannot be run)."""
    executor = executor or Executor(workers=1, timeout=timeout)
    result: list[bool | None] = [None] * len(items)
    by_lang: dict[str, list[int]] = {}
    for i, it in enumerate(items):
        by_lang.setdefault(it.language, []).append(i)
    with Sandbox(mode=executor.sandbox_mode) as sandbox:
        for language, idx in by_lang.items():
            if missing_tools(language):
                continue
            bodies = {}
            for i in idx:
                it = items[i]
                body = extract_body(language, completions[i])
                bodies[it.name] = "\n".join([it.prompt, *body, *([it.footer] if it.footer else [])]) + "\n"
            if language in ("python", "php"):
                progs = [(idx, _isolated_program(language, [items[i] for i in idx], bodies))]
            else:  # compiled: one program per concept so one broken completion fails alone
                progs = [([i], checking_program([items[i].concept], language, bodies=bodies)) for i in idx]
            for group, source in progs:
                mode = "script" if language in ("python", "php") else "main"
                r = executor.run_program(sandbox, Program(source, mode, language), task_id=f"babel/{language}")
                verdict = {}
                for line in r.output.splitlines():
                    parts = line.split()
                    if len(parts) == 2 and parts[0] in ("PASS", "FAIL"):
                        verdict[parts[1]] = parts[0] == "PASS"
                for i in group:
                    result[i] = verdict.get(items[i].name, False)
    return result


# ------------------------------------------------------------------------------------------ results

@dataclass
class BabelEvaluation:
    """Per-item outcomes; :meth:`summary` gives means with bootstrap intervals per split x language."""

    items: pd.DataFrame
    n_boot: int = 1000
    seed: int = 0

    def summary(self) -> pd.DataFrame:
        """Mean, 95% bootstrap interval and item count per split x language x metric: ``line_acc``,
        ``exact_match``, ``pass@1`` (where executed) and the body prior ``line_acc_prior`` (items
        with another concept of the same domain in their split)."""
        rows = []
        metrics = [m for m in ITEM_METRICS if m in self.items.columns]
        for (split, language), g in self.items.groupby(["split", "language"], sort=True):
            for metric in metrics:
                vals = g[metric].dropna().astype(float)
                if vals.empty:
                    continue
                mean, lo, hi = bootstrap_interval(vals.to_numpy(), n_boot=self.n_boot, seed=self.seed)
                rows.append(dict(split=split, language=language, metric=metric, value=mean, lo=lo, hi=hi,
                                 n=int(vals.size)))
        return pd.DataFrame(rows, columns=["split", "language", "metric", "value", "lo", "hi", "n"])

    def to_dataframe(self) -> pd.DataFrame:
        return self.summary()

    def rows(self) -> list[dict[str, Any]]:
        """Probe rows: per (split, language) the summary (identifier = split; metric, metric_lo,
        metric_hi), then one row per item and metric (identifier = ``"<split>:<concept>"``, n = 1;
        a metric that is NaN for the item, e.g. pass@1 not executed, has no row)."""
        out = []
        for r in self.summary().itertuples():
            for suffix, v in (("", r.value), ("_lo", r.lo), ("_hi", r.hi)):
                out.append(dict(probe="babel", language=r.language, identifier=r.split, layer=None,
                                metric=f"{r.metric}{suffix}", value=v, n=r.n))
        metrics = [m for m in ITEM_METRICS if m in self.items.columns]
        for r in self.items.to_dict("records"):
            ident = item_identifier(r["split"], r["concept"])
            for metric in metrics:
                v = r[metric]
                if v is None or not np.isfinite(float(v)):
                    continue
                out.append(dict(probe="babel", language=r["language"], identifier=ident, layer=None,
                                metric=metric, value=float(v), n=1))
        return out


def evaluate_babel(model: torch.nn.Module, tokenizer: Any, splits: BabelSplits, *,
                   languages: Sequence[str] = ("python", "php"), split_names: Sequence[str] = SPLITS,
                   target: str | None = None, execute: bool = True, batch_size: int = 32,
                   max_new_tokens: int | None = None, n_boot: int = 1000, seed: int = 0,
                   executor: Any = None, limit: int | None = None, progress: bool = False) -> BabelEvaluation:
    """Greedy body completion for every item; line accuracy, exact match and (optionally) pass@1.

    ``progress``: a bar on stderr over the items completed (the sandboxed runs follow).
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    items = babel_items(splits, languages=languages, split_names=split_names, target=target, limit=limit)
    if not items:
        raise ValueError("no Babel items for the given splits and languages")
    completions: list[str] = [""] * len(items)
    bar = progress_bar(total=len(items), desc="babel: complete", unit="item", enabled=progress)
    for language in languages:
        idx = [i for i, it in enumerate(items) if it.language == language]
        ref_tokens = max(len(tokenizer("\n".join(items[i].reference) + "\n}\n", add_special_tokens=False)["input_ids"])
                         for i in idx)
        limit = max_new_tokens or int(ref_tokens * 1.25) + 8
        texts = greedy_complete(model, tokenizer, [items[i].prompt for i in idx], max_new_tokens=limit,
                                batch_size=batch_size, language=language,
                                **({"on_batch": bar.update} if progress else {}))
        for i, t in zip(idx, texts):
            completions[i] = t
    bar.close()
    passed = execute_items(items, completions, executor=executor) if execute else [None] * len(items)
    bodies = [extract_body(it.language, comp) for it, comp in zip(items, completions)]
    prior = [float("nan")] * len(items)
    groups: dict[tuple[str, str], list[int]] = {}
    for i, it in enumerate(items):
        groups.setdefault((it.split, it.language), []).append(i)
    for idx in groups.values():
        for i, v in zip(idx, body_prior([bodies[i] for i in idx], [items[i].reference for i in idx],
                                        groups=[items[i].concept.domain for i in idx])):
            prior[i] = v
    rows = []
    for it, comp, body, ok, pr in zip(items, completions, bodies, passed, prior):
        acc, exact = score_lines(body, it.reference)
        rows.append(dict(split=it.split, language=it.language, concept=it.name, line_acc=acc,
                         exact_match=float(exact), **{"pass@1": (float(ok) if ok is not None else np.nan)},
                         **{PRIOR_METRIC: pr}, completion=comp))
    return BabelEvaluation(pd.DataFrame(rows), n_boot=n_boot, seed=seed)
