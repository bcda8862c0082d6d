"""Optional W&B logging of an evaluation run.

W&B is where our users already compare training runs, so a judge's benchmark numbers go
there in the same shape: the run config is the job's meta (judge identity, data, limits),
the summary holds overall and per-subset accuracies and failure counts, a table holds the
per-subset rows and the PNG figures are logged as images. ``WANDB_MODE=offline`` (the
tests use it) writes the run under the run directory without a network.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cerm_reward.evaluation.metrics import BenchmarkReport

_TABLE_COLUMNS = ["subset", "n", "accuracy", "accuracy_alt", "ties", "n_failed", "accuracy_without_failures"]


def summary_values(report: BenchmarkReport) -> dict[str, Any]:
    """Flat ``name -> number`` pairs for the W&B summary (``None`` values are left out)."""
    values: dict[str, Any] = {
        f"{report.benchmark}/overall": report.overall,
        f"{report.benchmark}/overall_alt": report.overall_alt,
        f"{report.benchmark}/overall_without_failures": report.overall_without_failures,
        f"{report.benchmark}/n": report.n,
        f"{report.benchmark}/n_failed": report.n_failed,
        f"{report.benchmark}/ties": report.ties,
    }
    values.update({f"{report.benchmark}/failures/{kind}": count for kind, count in report.failures.items()})
    values.update({f"{report.benchmark}/{key}": value for key, value in report.metrics.items()})
    for subset in report.subsets:
        values[f"{report.benchmark}/subset/{subset.name}/accuracy"] = subset.accuracy
        values[f"{report.benchmark}/subset/{subset.name}/n_failed"] = subset.n_failed
    return {key: value for key, value in values.items() if value is not None}


def log_report(project: str, report: BenchmarkReport, meta: dict[str, Any], figures: list[Path], *, directory: Path) -> Path:
    """Log one report as one W&B run; returns the run's local directory."""
    import wandb

    run = wandb.init(project=project, config=meta, dir=str(directory), job_type="eval", tags=[report.benchmark])
    try:
        table = wandb.Table(columns=_TABLE_COLUMNS)
        for subset in report.subsets:
            table.add_data(*(getattr(subset, column if column != "subset" else "name") for column in _TABLE_COLUMNS))
        run.log({f"{report.benchmark}/subsets": table, **{f"plots/{p.stem}": wandb.Image(str(p)) for p in figures}})
        run.summary.update(summary_values(report))
        return Path(run.dir).parent
    finally:
        run.finish()
