"""Judge metrics in verl's own logger: every ``Tracking.log`` of a step carries ``cerm/*``.

verl does not log training-time ``reward_extra_info``, and its trainer offers no metrics
hook, so the plugin wraps ``verl.utils.tracking.Tracking.log`` (in the trainer's process,
where verl logs). Before each log call the wrapper drains the job's metrics collectors
and merges their numbers into the step's data, so they reach every backend the user
chose (console, W&B, TensorBoard, ...); with W&B it also logs a table of sampled
criteria and critiques. A failure here is logged and never breaks verl's logging.
Set ``CERM_REWARD_VERL_METRICS=0`` to leave verl's logger untouched.
"""

from __future__ import annotations

import functools
import logging
import os
from typing import Any

logger = logging.getLogger(__name__)
TABLE_KEY = "cerm/examples"
TABLE_COLUMNS = ("query", "criteria", "critique", "score", "failure")


def drain_judge_metrics() -> tuple[dict[str, float], list[dict[str, str]]]:
    """Metrics and example rows of this job's judge collectors (never another job's on the same cluster)."""
    import ray

    from cerm_reward.integrations.verl.settings import current_job_namespace

    if not ray.is_initialized():
        return {}, []
    namespace = current_job_namespace()
    metrics: dict[str, float] = {}
    rows: list[dict[str, str]] = []
    collectors = sorted(
        a["name"]
        for a in ray.util.list_named_actors(all_namespaces=True)
        if a["namespace"] == namespace and a["name"].endswith("-metrics")
    )
    for name in collectors:
        pool_metrics, pool_rows = ray.get(ray.get_actor(name, namespace=namespace).drain.remote(), timeout=30)
        if len(collectors) > 1:  # several pools in one job: cerm/<pool>/<metric>, val-cerm/<pool>/<metric>
            pool = name.removesuffix("-metrics")
            pool_metrics = {_pool_key(key, pool): value for key, value in pool_metrics.items()}
        metrics.update(pool_metrics)
        rows.extend(pool_rows)
    return metrics, rows


def _pool_key(key: str, pool: str) -> str:
    prefix, _, metric = key.partition("/")
    return f"{prefix}/{pool}/{metric}"


def install() -> bool:
    """Wrap ``Tracking.log`` once per process; returns whether the wrapper is in place."""
    if os.environ.get("CERM_REWARD_VERL_METRICS", "1") == "0":
        return False
    from verl.utils.tracking import Tracking

    if getattr(Tracking.log, "__cerm_wrapped__", False):
        return True
    original = Tracking.log

    @functools.wraps(original)
    def log(self: Any, data: dict[str, Any], step: int, backend: Any = None) -> None:
        try:
            judge_metrics, rows = drain_judge_metrics()
        except Exception as error:  # a metrics problem must never stop training
            logger.warning("cerm: judge metrics not logged this step: %s", error)
            judge_metrics, rows = {}, []
        original(self, {**data, **judge_metrics}, step, backend)
        wandb = getattr(self, "logger", {}).get("wandb")
        if rows and wandb is not None and (backend is None or "wandb" in backend):
            table = wandb.Table(columns=list(TABLE_COLUMNS), data=[[row[c] for c in TABLE_COLUMNS] for row in rows])
            wandb.log({TABLE_KEY: table}, step=step)

    log.__cerm_wrapped__ = True  # type: ignore[attr-defined]
    Tracking.log = log
    return True
