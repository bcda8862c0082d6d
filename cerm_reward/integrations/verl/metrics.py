"""Per-step judge metrics for verl's logger, gathered across every reward worker.

Reward workers are separate Ray actors and verl logs from its trainer process, so each
worker sends one small record per judged sample to a named collector actor of the pool
(``<pool>-metrics``); the trainer's logger drains it once per step (see ``tracking``).
The numbers are the ones that tell a judge is helping or hurting RL: latency, tokens,
criteria reuse, failure rates by kind, and whether the scores separate a group at all.

Validation samples are judged by the same pool but never counted with training's:
each record says its phase, and a drain gives ``cerm/*`` for training samples and
``val-cerm/*`` for validation samples (see :func:`is_validation`).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import numpy as np

from cerm_reward.results import FailureKind

PREFIX = "cerm/"
VAL_PREFIX = "val-cerm/"
"""Validation samples' metrics: verl logs its own validation numbers under ``val-*`` too."""
VALIDATION_SPLITS = frozenset({"test", "val", "validation", "valid", "eval", "dev"})
"""``extra_info.split`` values that mark a validation sample (``cerm verl prepare-data`` and verl's
example preprocessors write ``train`` / ``test``)."""
INVALID_INPUT = "invalid_input"
"""The sample's prompt could not be rendered into a query: the judge was never asked."""
ENGINE_ERROR = FailureKind.ENGINE_ERROR.value
"""A replica raised while judging the sample (its engine or its judge)."""
POOL_UNREACHABLE = "pool_unreachable"
"""No replica answered within ``pool.call_timeout_s`` (dead, restarting beyond the deadline, or unplaceable)."""
FAILURE_KINDS = (*(kind.value for kind in FailureKind), INVALID_INPUT, POOL_UNREACHABLE)
SHARED_LOOKUPS = frozenset({"hit", "joined", "provided"})


def is_validation(extra_info: Any, meta_info: Any = None) -> bool:
    """Whether a sample belongs to validation: verl's ``validate`` flag where it reaches the reward
    worker (verl 0.9.1's agent loop and colocated reward loop do not forward it), else the sample's
    own ``extra_info.split``, which verl passes with every sample."""
    if meta_info and meta_info.get("validate"):
        return True
    split = extra_info.get("split") if hasattr(extra_info, "get") else None
    return isinstance(split, str) and split.lower() in VALIDATION_SPLITS


def step_metrics(records: Sequence[dict[str, Any]], prefix: str = PREFIX) -> dict[str, float]:
    """``<prefix>*`` metrics of one step's records (one per judged sample; see ``JudgeClient``)."""
    if not records:
        return {}
    rewards = np.array([r["reward"] for r in records], dtype=float)
    latencies = np.array([r["latency_s"] for r in records], dtype=float)
    lengths = np.array([r["answer_chars"] for r in records], dtype=float)
    metrics = {
        "samples": float(len(records)),
        "latency_p50_s": float(np.percentile(latencies, 50)),
        "latency_p95_s": float(np.percentile(latencies, 95)),
        "prompt_tokens": float(sum(r["prompt_tokens"] for r in records)),
        "completion_tokens": float(sum(r["completion_tokens"] for r in records)),
        "failure_rate": sum(bool(r["failure"]) for r in records) / len(records),
        "score_mean": float(rewards.mean()),
    }
    if any(r["criteria_lookup"] != "none" for r in records):  # a judge that writes criteria (CE-RM)
        metrics["criteria_cache_hit_rate"] = sum(r["criteria_lookup"] in SHARED_LOOKUPS for r in records) / len(records)
    for kind in FAILURE_KINDS:
        metrics[f"failure_rate/{kind}"] = sum(r["failure"] == kind for r in records) / len(records)
    groups: dict[str, list[float]] = defaultdict(list)
    for record in records:
        groups[record["group"]].append(record["reward"])
    multi = [scores for scores in groups.values() if len(scores) > 1]
    metrics["groups"] = float(len(groups))
    if multi:
        stds = [float(np.std(scores)) for scores in multi]
        metrics["group_score_std"] = float(np.mean(stds))
        metrics["zero_variance_group_frac"] = sum(std == 0.0 for std in stds) / len(stds)
    correlation = pearson(lengths, rewards)
    if correlation is not None:
        metrics["score_length_corr"] = correlation
    return {prefix + name: value for name, value in metrics.items()}


def pearson(x: np.ndarray, y: np.ndarray) -> float | None:
    """Pearson's r, or ``None`` when it is undefined (fewer than 2 points, or a constant side)."""
    if len(x) < 2 or float(np.std(x)) == 0.0 or float(np.std(y)) == 0.0:
        return None
    value = float(np.corrcoef(x, y)[0, 1])
    return None if math.isnan(value) else value


class MetricsCollector:
    """Ray actor ``<pool>-metrics``: records accumulate until the trainer's logger drains them."""

    def __init__(self, table_rows: int) -> None:
        self._records: list[dict[str, Any]] = []
        self._examples: list[dict[str, str]] = []
        self._table_rows = table_rows

    def record(self, record: dict[str, Any], example: dict[str, str] | None = None) -> None:
        self._records.append(record)
        if example is not None and len(self._examples) < self._table_rows:
            self._examples.append(example)

    def pending(self) -> int:
        """Records waiting for the next drain (one per judged sample)."""
        return len(self._records)

    def drain(self) -> tuple[dict[str, float], list[dict[str, str]]]:
        """This step's metrics (``cerm/*`` training, ``val-cerm/*`` validation) and example rows;
        the collector starts the next step empty."""
        records, examples = self._records, self._examples
        self._records, self._examples = [], []
        training = [record for record in records if not record.get("validation")]
        validation = [record for record in records if record.get("validation")]
        return {**step_metrics(training), **step_metrics(validation, VAL_PREFIX)}, examples
