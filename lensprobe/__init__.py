"""lensprobe: how a code language model becomes multilingual, measured over its checkpoints.

Public API (imported lazily, so ``import lensprobe`` is cheap):

Engine and loading
    load_model, get_adapter, register_adapter   -- :mod:`lensprobe.engine.adapters`
    CheckpointSeries                            -- :mod:`lensprobe.checkpoints`
    logit_lens, LogitLensResult                 -- :mod:`lensprobe.engine.lens`
    TunedLens, TunedLensError                   -- :mod:`lensprobe.engine.tuned_lens`
    run_probes                                  -- :mod:`lensprobe.engine.hooks`
    Probe, Batch                                -- :mod:`lensprobe.engine.protocol`
Suites and probes
    load_suite, list_suites, validate_suite     -- :mod:`lensprobe.suites`
    WorkingLanguageProbe, working_language      -- :mod:`lensprobe.probes.working_language`
LAPE
    lape_select, LapeResult, ActivationCounter  -- :mod:`lensprobe.lape`
    LapeProbe                                   -- :mod:`lensprobe.probes.lape`
Evaluation
    evaluate_samples                            -- :mod:`lensprobe.evaluate`
Analyses
    fit (sub-package), run_sweep (lensprobe.sweep), detect_stages, plot
"""
from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_EXPORTS: dict[str, str] = {
    "load_model": "lensprobe.engine.adapters",
    "get_adapter": "lensprobe.engine.adapters",
    "register_adapter": "lensprobe.engine.adapters",
    "ArchitectureAdapter": "lensprobe.engine.adapters",
    "LoadedModel": "lensprobe.engine.adapters",
    "verify_lens": "lensprobe.engine.adapters",
    "readout": "lensprobe.engine.lens",
    "LensReadout": "lensprobe.engine.lens",
    "block_hook_points": "lensprobe.engine.hooks",
    "neuron_hook_points": "lensprobe.engine.hooks",
    "CheckpointSeries": "lensprobe.checkpoints",
    "CheckpointInfo": "lensprobe.checkpoints",
    "logit_lens": "lensprobe.engine.lens",
    "LogitLensResult": "lensprobe.engine.lens",
    "TunedLens": "lensprobe.engine.tuned_lens",
    "TunedLensError": "lensprobe.engine.tuned_lens",
    "TunedLensMismatchError": "lensprobe.engine.tuned_lens",
    "run_probes": "lensprobe.engine.hooks",
    "Probe": "lensprobe.engine.protocol",
    "Batch": "lensprobe.engine.protocol",
    "load_suite": "lensprobe.suites",
    "list_suites": "lensprobe.suites",
    "validate_suite": "lensprobe.suites",
    "babel_suite": "lensprobe.babel.suite",
    "write_babel_suite": "lensprobe.babel.suite",
    "WorkingLanguageProbe": "lensprobe.probes.working_language",
    "working_language": "lensprobe.probes.working_language",
    "lape_select": "lensprobe.lape",
    "LapeResult": "lensprobe.lape",
    "ActivationCounter": "lensprobe.lape",
    "LapeInputs": "lensprobe.lape",
    "lape_over_series": "lensprobe.probes.lape",
    "LapeProbe": "lensprobe.probes.lape",
    "evaluate_samples": "lensprobe.evaluate",
    "run_sweep": "lensprobe.sweep",
    "probe_model": "lensprobe.sweep",
    "evaluate_checkpoints": "lensprobe.probes.functional",
    "detect_stages": "lensprobe.analysis.stages",
    "make_probe": "lensprobe.probes.registry",
    "register_probe": "lensprobe.probes.registry",
}
#: short names for sub-packages (``lensprobe.fit.load_run``, ``lensprobe.stages.detect_stages``)
_SUBMODULES: dict[str, str] = {
    "fit": "lensprobe.analysis.fit", "stages": "lensprobe.analysis.stages", "plot": "lensprobe.present.figures",
    "report": "lensprobe.present.report", "evaluate": "lensprobe.evaluate", "suites": "lensprobe.suites",
    "checkpoints": "lensprobe.checkpoints", "engine": "lensprobe.engine", "lape": "lensprobe.lape",
    "sweep": "lensprobe.sweep", "babel": "lensprobe.babel", "languages": "lensprobe.languages",
}

__all__ = sorted(_EXPORTS) + ["__version__"]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        module = importlib.import_module(_EXPORTS[name])
        value = getattr(module, name)
        globals()[name] = value
        return value
    if name in _SUBMODULES:
        module = importlib.import_module(_SUBMODULES[name])
        globals()[name] = module
        return module
    raise AttributeError(f"module 'lensprobe' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__) | _SUBMODULES)
