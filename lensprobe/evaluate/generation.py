"""Batched greedy / sampled completion of benchmark prompts with an HF causal LM.

Prompts are left-padded (so every row's last real token sits at the end and generation continues
from it), generation stops per row at the first stop sequence (or ``max_new_tokens``), and the
completion is truncated at the earliest stop sequence. For brace languages in mxeval and
HumanEval-X, whose completions must close the function, the stop is the closing brace at the
function's indentation and that brace is kept.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Sequence

import torch

from .datasets import Problem

#: Top-level Python lines that end a function body (the HumanEval / Codex stop list).
PYTHON_STOPS: tuple[str, ...] = ("\ndef ", "\nclass ", "\nif __name__", "\nprint(", "\n#", "\nassert ")
PHP_STOPS: tuple[str, ...] = ("\nfunction", "\n?>", "\n//", "\n#")


@dataclass(frozen=True)
class StopSpec:
    """Where to cut a completion: at the earliest of ``sequences``; ``keep`` ones are kept (closing braces)."""

    sequences: tuple[str, ...]
    keep: tuple[str, ...] = ()

    def truncate(self, text: str) -> tuple[str, bool]:
        """The completion cut at the earliest stop sequence, and whether one was found."""
        best: tuple[int, int] | None = None  # (cut position, end if kept)
        for seq in (*self.sequences, *self.keep):
            i = text.find(seq)
            if i < 0:
                continue
            end = i + len(seq) if seq in self.keep else i
            if best is None or i < best[0]:
                best = (i, end)
        if best is None:
            return text, False
        return text[: best[1]], True


def stop_spec(problem: Problem) -> StopSpec:
    """Per-language stop sequences (MultiPL-E files carry their own)."""
    if problem.stop_tokens:
        return StopSpec(tuple(problem.stop_tokens))
    lang = problem.language
    if lang == "python":
        return StopSpec(PYTHON_STOPS)
    lines = [ln for ln in problem.prompt.rstrip("\n").split("\n") if ln.strip()]
    indent = re.match(r"[ \t]*", lines[-1]).group(0) if lines else ""
    close = "\n" + indent + "}"
    if lang == "php":
        return StopSpec(PHP_STOPS, keep=(close,))
    return StopSpec((), keep=(close,))


class _StopOnSequences:
    """StoppingCriteria: a row is done once its generated text contains any stop sequence."""

    def __init__(self, tokenizer: Any, prompt_len: int, specs: Sequence[StopSpec]) -> None:
        self.tokenizer, self.prompt_len, self.specs = tokenizer, prompt_len, specs

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor, **kwargs: Any) -> torch.BoolTensor:
        new = input_ids[:, self.prompt_len:]
        texts = self.tokenizer.batch_decode(new, skip_special_tokens=True)
        done = [spec.truncate(t)[1] for spec, t in zip(self.specs, texts)]
        return torch.tensor(done, dtype=torch.bool, device=input_ids.device)


def _decode_completion(tokenizer: Any, prompt_ids: list[int], new_ids: list[int]) -> str:
    """Text of ``new_ids`` as it continues the prompt (decoding them alone can change spaces)."""
    prompt_text = tokenizer.decode(prompt_ids, skip_special_tokens=True)
    full = tokenizer.decode(prompt_ids + new_ids, skip_special_tokens=True)
    if full.startswith(prompt_text):
        return full[len(prompt_text):]
    return tokenizer.decode(new_ids, skip_special_tokens=True)


def generate_completions(model: torch.nn.Module, tokenizer: Any, problems: Sequence[Problem], *, n: int = 1,
                         temperature: float = 0.0, top_p: float = 0.95, max_new_tokens: int = 256,
                         batch_size: int = 8, seed: int = 0, max_prompt_tokens: int | None = None) -> list[dict[str, Any]]:
    """``n`` completions per problem: greedy when ``temperature == 0`` (then ``n`` must be 1).

    Returns dicts ``{"task_id", "completion_id", "completion", "stopped"}`` in problem order.
    Sampling is reproducible for a given ``seed`` and ``batch_size`` (the generator is re-seeded
    per batch).
    """
    if n < 1 or max_new_tokens < 1 or batch_size < 1:
        raise ValueError(f"n, max_new_tokens and batch_size must be >= 1 (got {n}, {max_new_tokens}, {batch_size})")
    if temperature < 0:
        raise ValueError(f"temperature must be >= 0, got {temperature}")
    greedy = temperature == 0
    if greedy and n != 1:
        raise ValueError("greedy decoding gives one completion per problem; use temperature > 0 for n > 1")
    if tokenizer.pad_token_id is None:
        if tokenizer.eos_token_id is None:
            raise ValueError("the tokenizer has neither a pad nor an eos token")
        tokenizer.pad_token = tokenizer.eos_token
    old_side = tokenizer.padding_side
    tokenizer.padding_side = "left"
    device = next(model.parameters()).device
    jobs = [(p, j) for p in problems for j in range(n)]
    out: list[dict[str, Any]] = []
    try:
        for b, start in enumerate(range(0, len(jobs), batch_size)):
            chunk = jobs[start:start + batch_size]
            enc = tokenizer([p.prompt for p, _ in chunk], return_tensors="pt", padding=True,
                            add_special_tokens=False)
            if max_prompt_tokens is not None and enc["input_ids"].shape[1] > max_prompt_tokens:
                enc = {k: v[:, -max_prompt_tokens:] for k, v in enc.items()}
            enc = {k: v.to(device) for k, v in enc.items()}
            specs = [stop_spec(p) for p, _ in chunk]
            width = enc["input_ids"].shape[1]
            kwargs: dict[str, Any] = dict(max_new_tokens=max_new_tokens, pad_token_id=tokenizer.pad_token_id,
                                          stopping_criteria=[_StopOnSequences(tokenizer, width, specs)])
            if greedy:
                kwargs.update(do_sample=False)
            else:
                kwargs.update(do_sample=True, temperature=temperature, top_p=top_p, top_k=0)
                torch.manual_seed(seed * 1_000_003 + b)
            with torch.no_grad():
                gen = model.generate(**enc, **kwargs)
            for row, ((p, j), spec) in enumerate(zip(chunk, specs)):
                mask = enc["attention_mask"][row].bool()
                prompt_ids = enc["input_ids"][row][mask].tolist()
                new_ids = gen[row, width:].tolist()
                eos = tokenizer.eos_token_id
                if eos is not None and eos in new_ids:
                    new_ids = new_ids[: new_ids.index(eos)]
                text = _decode_completion(tokenizer, prompt_ids, new_ids)
                completion, stopped = spec.truncate(text)
                out.append({"task_id": p.task_id, "completion_id": j, "completion": completion, "stopped": stopped})
    finally:
        tokenizer.padding_side = old_side
    return out
