"""The closed sets of values ``cerm`` flags accept, as ``Enum``s typer lists and checks.

Each set is built from the one place that defines it (the judge registry, the configuration's
``Literal`` fields, the evaluation scorers and loaders), so a new judge kind or loader is a new
choice without touching the CLI, and a wrong value is typer's usage error naming the choices.
"""

from __future__ import annotations

from enum import Enum
from typing import Any, get_args

from cerm_reward.config import EngineConfig, FailurePolicy
from cerm_reward.data.loaders import LOADERS
from cerm_reward.data.pairs import input_formats
from cerm_reward.evaluation.scorers import JUDGE_KINDS as EVAL_JUDGES
from cerm_reward.judges.registry import JUDGE_KINDS
from cerm_reward.training.critic_rm.config import BuildConfig, LmWeightSchedule


def _choices(name: str, values: Any) -> Any:
    """A ``str`` Enum whose members are ``values`` (its ``.value`` is what the configuration takes)."""
    return Enum(name, {value: value for value in values}, type=str)


def _literal(model: Any, field: str) -> tuple[str, ...]:
    return get_args(model.model_fields[field].annotation)


JudgeKindChoice = _choices("JudgeKindChoice", JUDGE_KINDS)
"""``--judge`` of score, serve and config: a ``judge.kind``."""
EvalJudgeChoice = _choices("EvalJudgeChoice", EVAL_JUDGES)
"""``cerm eval --judge``: the judge kinds, the pairwise baseline, or precomputed scores."""
EngineChoice = _choices("EngineChoice", _literal(EngineConfig, "kind"))
OnFailureChoice = _choices("OnFailureChoice", _literal(FailurePolicy, "on_failure"))
BenchmarkFormatChoice = _choices("BenchmarkFormatChoice", LOADERS)
"""``cerm eval --format`` and ``cerm critic build-data --format``: the evaluation loaders."""
PairFormatChoice = _choices("PairFormatChoice", input_formats())
"""``cerm train ... --format``: the evaluation loaders, or a parquet/``datasets`` table."""
RefinementChoice = _choices("RefinementChoice", _literal(BuildConfig, "refinement"))
ScheduleChoice = _choices("ScheduleChoice", _literal(LmWeightSchedule, "kind"))


def value_of(choice: Enum | None) -> Any:
    """The plain value a configuration takes (``None`` stays ``None``: the configuration's own value)."""
    return None if choice is None else choice.value
