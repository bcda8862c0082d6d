"""Offline evaluation harness: benchmark loaders, metrics, resumable runs, reports, plots, needle test.

Everything here is pure Python and engine-free: a run takes any object that follows
:class:`cerm_reward.evaluation.scoring_loop.Scorer` (the CE-RM judge, a precomputed score file,
another reward model), so the metrics can be checked on published per-item scores as well
as on our own judge. See ``docs/evaluation.md`` for each benchmark's protocol.
"""

from cerm_reward.data.items import EvalItem, ResponseScore, ScoredItem
from cerm_reward.data.loaders import LOADERS, load_items
from cerm_reward.evaluation.matching import MatchAccount
from cerm_reward.evaluation.metrics import METRICS, BenchmarkReport, SubsetReport, compute_report
from cerm_reward.evaluation.precomputed import PrecomputedScorer
from cerm_reward.evaluation.scoring_loop import Scorer, ScoreScope, evaluate
from cerm_reward.evaluation.store import ResultStore, ScoreCache

__all__ = [
    "LOADERS",
    "METRICS",
    "BenchmarkReport",
    "EvalItem",
    "MatchAccount",
    "PrecomputedScorer",
    "ResponseScore",
    "ResultStore",
    "ScoreCache",
    "ScoredItem",
    "ScoreScope",
    "Scorer",
    "SubsetReport",
    "compute_report",
    "evaluate",
    "load_items",
]
