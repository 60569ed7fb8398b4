"""lensprobe.analysis.fit: from probe curves to data-mix recommendations.

Babel maps (the paper's Eq.2, Eq.3 and Algorithm 1)
    python_share_from_loss, python_share_from_tokens, tokens_for_share, fit_log_linear,
    recommend_tokens, recommend_mixture, predicted_vs_actual, share_at_best, BabelRun, load_run
Laws and fitting
    fit_law (chinchilla, mixing_exp, mixing_linear, multilingual, log_linear), make_law, LawFit,
    synergy_matrix, tau_from_synergy, regmix_comparison
Allocation
    allocate -> Allocation (mixture, predictions with intervals, uniform/natural comparison)
Mixture files
    write_mixture, read_mixture (from lensprobe.mixture_file, the one reader pretraining uses too)
"""
from __future__ import annotations

from .allocation import Allocation, InfeasibleAllocation, allocate, project_to_box_simplex
from .share import (PAPER_ALPHA_WINDOW, LogLinearFit, NoFiniteTokens, PythonShare, alpha_window_mask, fit_log_linear,
                    loss_noise, python_share_from_loss, python_share_from_tokens, tokens_for_share)
from lensprobe.analysis.smoothing import sliding_mean
from .fitting import BootstrapResult, LawFit, Validation, fit_law
from .laws import Law, list_laws, make_law, register_law
from lensprobe.mixture_file import read_mixture, write_mixture
from .recommend import (BestShare, MixtureRecommendation, PredictedVsActual, Recommendation, best_checkpoint_set,
                        predicted_vs_actual, recommend_mixture, recommend_tokens, share_at_best)
from .regmix import REGMIX_TARGET, RegmixComparison, load_regmix, regmix_comparison
from .runs import BabelRun, LossCurve, PerformanceUnits, load_run
from .synergy import synergy_matrix, tau_from_synergy
from lensprobe.present.fit_figures import plot_law_fit, plot_predicted_vs_actual, plot_share_curve

__all__ = [
    "python_share_from_loss", "python_share_from_tokens", "tokens_for_share", "fit_log_linear",
    "sliding_mean", "PythonShare", "LogLinearFit", "NoFiniteTokens", "PAPER_ALPHA_WINDOW", "alpha_window_mask",
    "loss_noise",
    "BabelRun", "LossCurve", "PerformanceUnits", "load_run", "recommend_tokens", "recommend_mixture",
    "predicted_vs_actual", "Recommendation", "MixtureRecommendation", "PredictedVsActual", "share_at_best",
    "best_checkpoint_set", "BestShare",
    "fit_law", "LawFit", "BootstrapResult", "Validation", "make_law", "register_law", "Law", "list_laws",
    "synergy_matrix", "tau_from_synergy",
    "allocate", "Allocation", "InfeasibleAllocation", "project_to_box_simplex",
    "write_mixture", "read_mixture",
    "regmix_comparison", "load_regmix", "RegmixComparison", "REGMIX_TARGET",
    "plot_predicted_vs_actual", "plot_share_curve", "plot_law_fit",
]
