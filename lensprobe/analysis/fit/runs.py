"""What Algorithm 1 reads: a sweep table (performance per checkpoint) and a loss log.

A :class:`BabelRun` holds

* ``sweep``: the long-format sweep table, columns ``run, checkpoint, step, tokens, probe, language,
  identifier, layer, metric, value, n``. Performance rows are selected by metric name (e.g.
  ``"pass@1"`` or ``"final_accuracy"``); rows with ``n == 1`` are items (problems, concepts), rows
  with ``n > 1`` aggregates (e.g. a split's mean). :meth:`BabelRun.performance_units` gives the
  units a bootstrap may resample: items, or runs (seeds) — never aggregates of one run.
* ``loss_log``: the rows of ``loss.jsonl`` (``step, loss, loss_by_language: {lang: loss}``), one
  training batch per step.
* ``val_log`` (optional): rows of ``val.jsonl`` (``step, tokens, language, loss, bpb``), the
  held-out loss at each snapshot. Eq.2 prefers it (docs/fit.md).
* ``target``: the new language (inferred from the sweep when it holds exactly one non-Python one).
* ``total_steps`` (optional): the run's length (``run.json``); alpha's window is relative to it.

``load_run(path)`` builds one from a run directory: ``<run>/loss.jsonl``, optional
``<run>/val.jsonl``, ``<run>/run.json`` and the sweep parquet directory ``<run>/results/``.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal, Sequence

import numpy as np
import pandas as pd

from lensprobe.languages import LANGUAGES
from lensprobe.table import SWEEP_COLUMNS

__all__ = ["BabelRun", "LossCurve", "PerformanceUnits", "load_run", "read_jsonl", "read_table", "SWEEP_COLUMNS"]


def read_jsonl(path: str | Path) -> pd.DataFrame:
    """Rows of a JSON-lines file; a malformed line raises naming the file and line number."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    rows = []
    lines = path.read_text(encoding="utf-8").splitlines()
    last = max((i for i, line in enumerate(lines) if line.strip()), default=-1)
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError as exc:
            if i == last and i > 0:  # a torn last line (interrupted writer) is skipped
                break
            raise ValueError(f"{path}:{i + 1}: not valid JSON ({exc.msg})") from None
    return pd.DataFrame(rows)


def read_table(path: str | Path) -> pd.DataFrame:
    """A sweep table from parquet (file or directory), CSV or JSON lines."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file or directory")
    if path.is_dir():
        if (path / "results").is_dir() and not any(path.glob("*.parquet")):
            path = path / "results"
        # one file per checkpoint (lensprobe.sweep); hidden files are in-flight atomic writes
        files = sorted(p for p in path.glob("*.parquet") if not p.name.startswith((".", "_")))
        if not files:
            raise FileNotFoundError(f"{path}: no sweep results (*.parquet); run `lensprobe sweep` first")
        frames = [pd.read_parquet(p) for p in files]
        frames = [f for f in frames if not f.empty]
        return pd.concat(frames, ignore_index=True) if frames else pd.read_parquet(files[0])
    suffix = path.suffix.lower()
    if suffix in (".parquet", ".pq"):
        return pd.read_parquet(path)
    if suffix == ".csv":
        return pd.read_csv(path)
    if suffix in (".jsonl", ".json"):
        return read_jsonl(path)
    raise ValueError(f"{path}: unknown table format {suffix!r} (use .parquet, .csv or .jsonl)")


def _require(df: pd.DataFrame, columns, what: str) -> None:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise ValueError(f"{what} lacks column(s) {missing}; it has {list(df.columns)}")


@dataclass(frozen=True)
class LossCurve:
    """The target-language loss Eq.2 reads: ``kind`` is ``"val"`` (held-out, at snapshots),
    ``"train"`` (the training batches' loss on the target, one value per logged step) or
    ``"total"`` (the mixed training loss)."""

    steps: np.ndarray
    losses: np.ndarray
    source: str
    kind: str

    def __iter__(self):
        """``steps, losses, source = run.target_loss()`` still unpacks."""
        return iter((self.steps, self.losses, self.source))


@dataclass(frozen=True)
class PerformanceUnits:
    """A step x unit matrix of a metric and what a unit is.

    ``kind``: ``"items"`` (one run's items), ``"seeds"`` (one curve per run: its mean over rows),
    ``"seeds/items"`` (several runs' items; ``groups`` names each column's run) or ``"aggregate"``
    (one run without items: nothing honest to resample). ``dropped`` counts items missing at some step.
    """

    steps: np.ndarray
    values: np.ndarray
    columns: list[str]
    groups: np.ndarray | None
    kind: str
    dropped: int = 0

    @property
    def mean(self) -> np.ndarray:
        """The per-step mean the point estimate uses (runs weighted equally, then items)."""
        if self.groups is None:
            return self.values.mean(axis=1)
        return np.mean([self.values[:, self.groups == g].mean(axis=1) for g in np.unique(self.groups)], axis=0)


@dataclass(frozen=True)
class BabelRun:
    """One continual run: sweep table + loss log (+ optional validation log)."""

    sweep: pd.DataFrame
    loss_log: pd.DataFrame | None = None
    target: str | None = None
    val_log: pd.DataFrame | None = None
    name: str = "run"
    source: str | None = None
    total_steps: float | None = None

    def __post_init__(self):
        _require(self.sweep, ("step", "metric", "value"), f"sweep table of {self.name!r}")
        if self.loss_log is not None:
            _require(self.loss_log, ("step",), f"loss log of {self.name!r}")
        if self.target is None:
            object.__setattr__(self, "target", self._infer_target())

    def _infer_target(self) -> str | None:
        if "language" not in self.sweep.columns:
            return None
        langs = sorted({str(x) for x in self.sweep["language"].dropna().unique()} - {"python", "", "None"})
        return langs[0] if len(langs) == 1 else None

    def with_target(self, target: str) -> "BabelRun":
        return replace(self, target=target)

    # -- performance -------------------------------------------------------------------------
    def performance_rows(self, metric: str, *, probe: str | None = None, language: str | None = None) -> pd.DataFrame:
        """Rows of ``metric`` for the target language (or ``language``), one per step×identifier."""
        df = self.sweep[self.sweep["metric"] == metric]
        if df.empty:
            known = sorted(self.sweep["metric"].dropna().astype(str).unique())
            raise ValueError(f"sweep table of {self.name!r} has no rows with metric {metric!r}; metrics present: {known}")
        if probe is not None:
            df = df[df["probe"] == probe]
            if df.empty:
                raise ValueError(f"sweep table of {self.name!r} has no {metric!r} rows from probe {probe!r}")
        elif "probe" in df.columns and df["probe"].nunique() > 1:
            raise ValueError(
                f"metric {metric!r} comes from several probes {sorted(df['probe'].unique())} in {self.name!r}; pass probe="
            )
        lang = language or self.target
        if "language" in df.columns and lang is not None and (df["language"] == lang).any():
            df = df[df["language"] == lang]
        elif "language" in df.columns and df["language"].nunique() > 1:
            raise ValueError(
                f"metric {metric!r} has rows for several languages {sorted(df['language'].dropna().unique())} in "
                f"{self.name!r}; name the target language"
            )
        df = df[np.isfinite(df["value"].astype(float))]
        if df.empty:
            raise ValueError(f"all {metric!r} values are missing in {self.name!r}")
        return df

    def performance_matrix(self, metric: str, *, probe: str | None = None) -> pd.DataFrame:
        """Step × identifier table of ``metric`` (one column ``""`` when not per identifier)."""
        df = self.performance_rows(metric, probe=probe).copy()
        ident = df["identifier"] if "identifier" in df.columns else pd.Series("", index=df.index)
        df["_id"] = ident.fillna("").astype(str)
        mat = df.pivot_table(index="step", columns="_id", values="value", aggfunc="mean")
        return mat.sort_index()

    def performance_units(self, metric: str, *, probe: str | None = None,
                          identifiers: Sequence[str] | None = None) -> PerformanceUnits:
        """The units of ``metric`` a bootstrap may resample (see :class:`PerformanceUnits`).

        ``identifiers`` keeps rows whose identifier equals one of them or starts with it followed by
        ``":"`` (Babel items are ``"<split>:<concept>"``, its split summaries ``"<split>"``). Rows with
        ``n == 1`` are items; when a run has item rows its aggregate rows (``n > 1``) are ignored.
        Without an ``n`` column, identifiers are taken as items. Items missing at some step are
        dropped (counted in ``dropped``).
        """
        df = self.performance_rows(metric, probe=probe).copy()
        ident = (df["identifier"] if "identifier" in df.columns else pd.Series("", index=df.index)).fillna("").astype(str)
        df["_id"] = ident
        if identifiers is not None:
            wanted = [str(x) for x in identifiers]
            keep = ident.map(lambda x: any(x == w or x.startswith(w if w.endswith(":") else w + ":") for w in wanted))
            df = df[keep]
            if df.empty:
                raise ValueError(f"no {metric!r} rows of {self.name!r} with identifiers {wanted}; present: "
                                 f"{sorted(ident.unique())[:8]}")
        df["_run"] = df["run"].fillna("").astype(str) if "run" in df.columns else ""
        if "n" in df.columns:
            n = pd.to_numeric(df["n"], errors="coerce")
            item = (n == 1).to_numpy()
            has_items = pd.Series(item, index=df.index).groupby(df["_run"]).transform("any").to_numpy()
            df = df[item | ~has_items]
            df["_item"] = item[item | ~has_items]
            df["_w"] = n[item | ~has_items].fillna(1).to_numpy()
        else:
            df["_item"] = df["_id"] != ""
            df["_w"] = 1.0
        runs = sorted(df["_run"].unique())
        itemized = all(df.loc[df["_run"] == r, "_item"].all() and df.loc[df["_run"] == r, "_id"].nunique() > 1
                       for r in runs)
        if itemized:
            mat = df.pivot_table(index="step", columns=["_run", "_id"], values="value", aggfunc="mean").sort_index()
            complete = mat.notna().all(axis=0)
            dropped = int((~complete).sum())
            mat = mat.loc[:, complete]
            if mat.shape[1] < 2:
                raise ValueError(f"{metric!r} in {self.name!r}: fewer than 2 items have a value at every step "
                                 f"({dropped} dropped for missing steps)")
            run_of = np.array([str(r) for r, _ in mat.columns])
            cols = [f"{r}/{i}" if len(runs) > 1 else str(i) for r, i in mat.columns]
            if len(runs) > 1:
                return PerformanceUnits(mat.index.to_numpy(float), mat.to_numpy(float), cols, run_of, "seeds/items", dropped)
            return PerformanceUnits(mat.index.to_numpy(float), mat.to_numpy(float), cols, None, "items", dropped)
        # aggregate rows: one curve per run (n-weighted mean over its rows at each step)
        df["_wv"] = df["value"].astype(float) * df["_w"]
        g = df.groupby(["step", "_run"])
        curve = (g["_wv"].sum() / g["_w"].sum()).unstack("_run").sort_index()
        curve = curve.loc[:, curve.notna().all(axis=0)]
        if curve.shape[1] == 0:
            raise ValueError(f"{metric!r} in {self.name!r}: no run has a value at every step")
        kind = "seeds" if curve.shape[1] > 1 else "aggregate"
        return PerformanceUnits(curve.index.to_numpy(float), curve.to_numpy(float), [str(c) for c in curve.columns],
                                None, kind, len(runs) - curve.shape[1])

    # -- loss --------------------------------------------------------------------------------
    def target_loss(self, *, source: Literal["auto", "train", "val", "total"] = "auto") -> LossCurve:
        """The loss on the target-language data for Eq.2.

        ``auto`` prefers the validation log's rows for the target (held-out, at every snapshot;
        at least 3 points), then ``loss_by_language[target]`` of the training log (one batch per
        step: noisy, smooth it); ``total`` uses the mixed training loss (only when you know the run
        trains on the target alone)."""
        target = self.target
        tried = []
        if source in ("auto", "val") and self.val_log is not None and target is not None:
            _require(self.val_log, ("step", "language", "loss"), f"val log of {self.name!r}")
            d = self.val_log[self.val_log["language"] == target][["step", "loss"]].dropna()
            if len(d["step"].unique()) >= (3 if source == "auto" else 1):
                d = d.groupby("step", as_index=False)["loss"].mean()
                return LossCurve(d["step"].to_numpy(float), d["loss"].to_numpy(float),
                                 f"val.jsonl language={target!r} (held-out)", "val")
            tried.append(f"val.jsonl has {len(d['step'].unique())} step(s) for {target!r}")
        if source in ("auto", "train") and self.loss_log is not None and target is not None:
            col = self._train_language_column(target)
            if col is not None:
                d = self.loss_log[["step", col]].dropna()
                if not d.empty:
                    d = d.groupby("step", as_index=False)[col].mean()
                    return LossCurve(d["step"].to_numpy(float), d[col].to_numpy(float),
                                     f"loss.jsonl loss_by_language[{target!r}] (training batches)", "train")
            tried.append(f"loss.jsonl has no loss_by_language[{target!r}]")
        if source == "total" and self.loss_log is not None:
            _require(self.loss_log, ("step", "loss"), f"loss log of {self.name!r}")
            d = self.loss_log[["step", "loss"]].dropna().groupby("step", as_index=False)["loss"].mean()
            return LossCurve(d["step"].to_numpy(float), d["loss"].to_numpy(float), "loss.jsonl loss (all languages)",
                             "total")
        if target is None:
            raise ValueError(f"{self.name!r}: the target language is unknown (the sweep names none or several); pass target=")
        if self.loss_log is None and self.val_log is None:
            raise ValueError(f"{self.name!r}: no loss log; Eq.2 needs the loss on the {target!r} data")
        raise ValueError(f"{self.name!r}: no loss on the {target!r} data for Eq.2 ({'; '.join(tried) or source})")

    def run_length(self) -> float:
        """The run's length in steps: ``total_steps`` (run.json), else the last step any log or the sweep saw."""
        if self.total_steps is not None:
            return float(self.total_steps)
        last = [float(self.sweep["step"].max())]
        for log in (self.loss_log, self.val_log):
            if log is not None and "step" in log.columns and len(log):
                last.append(float(log["step"].max()))
        return max(last)

    def _train_language_column(self, target: str) -> str | None:
        log = self.loss_log
        flat = f"loss_by_language.{target}"
        if flat in log.columns:
            return flat
        if "loss_by_language" in log.columns:
            values = log["loss_by_language"].map(
                lambda d: d.get(target, np.nan) if isinstance(d, dict) else np.nan
            )
            if values.notna().any():
                object.__setattr__(self, "loss_log", log.assign(**{flat: values.astype(float)}))
                return flat
        return None


def load_run(path: str | Path, *, target: str | None = None, sweep: str | Path | None = None,
             loss_log: str | Path | None = None) -> BabelRun:
    """A :class:`BabelRun` from a run directory (``loss.jsonl``, ``val.jsonl``, ``run.json``, ``results/``),
    or from explicit ``sweep`` / ``loss_log`` paths."""
    root = Path(path) if path is not None else None
    sweep_path = Path(sweep) if sweep is not None else (root / "results" if root is not None else None)
    if sweep_path is None or not sweep_path.exists():
        raise FileNotFoundError(f"sweep table not found: {sweep_path} (run `lensprobe sweep` first)")
    loss_path = Path(loss_log) if loss_log is not None else (root / "loss.jsonl" if root is not None else None)
    val_path = (root / "val.jsonl") if root is not None and root.is_dir() else None
    loss_df = read_jsonl(loss_path) if loss_path is not None and loss_path.is_file() else None
    if loss_log is not None and loss_df is None:
        raise FileNotFoundError(f"{loss_log}: no such loss log")
    val_df = read_jsonl(val_path) if val_path is not None and val_path.is_file() else None
    total = None
    meta = (root / "run.json") if root is not None and root.is_dir() else None
    if meta is not None and meta.is_file():
        try:
            total = json.loads(meta.read_text(encoding="utf-8")).get("total_steps")
        except json.JSONDecodeError as exc:
            raise ValueError(f"{meta}: not valid JSON ({exc.msg})") from None
        if total is not None and not (isinstance(total, (int, float)) and total > 0):
            raise ValueError(f"{meta}: total_steps must be a positive number, got {total!r}")
    name = root.name if root is not None and root.is_dir() else str(sweep_path)
    return BabelRun(sweep=read_table(sweep_path), loss_log=loss_df, target=target, val_log=val_df,
                    name=name, source=str(root or sweep_path), total_steps=total)
