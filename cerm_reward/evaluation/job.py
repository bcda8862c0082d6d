"""One evaluation run from items to reports: the part of ``cerm eval`` that is not the CLI.

A run directory holds everything a run produces, so rerunning the same command in it
resumes: ``results.jsonl`` (the append-only store), ``report.json``, ``report.md`` and
``plots/``. The score cache is separate (one file shared by runs), since two benchmarks or
two limits over the same texts should not pay for the same judgements twice.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cerm_reward.data.items import EvalItem, ScoredItem
from cerm_reward.errors import ConfigError
from cerm_reward.evaluation.matching import MatchAccount
from cerm_reward.evaluation.metrics import BenchmarkReport, compute_report
from cerm_reward.evaluation.report import write_json, write_markdown
from cerm_reward.evaluation.scoring_loop import ProgressCallback, RunStats, Scorer, evaluate
from cerm_reward.evaluation.store import ResultStore, ScoreCache

RESULTS_FILE = "results.jsonl"


def default_cache_path() -> Path:
    """``$XDG_CACHE_HOME/cerm-reward/eval-scores.sqlite`` (``~/.cache`` when unset)."""
    root = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return root / "cerm-reward" / "eval-scores.sqlite"


def select_items(items: Sequence[EvalItem], *, subsets: Sequence[str] = (), limit: int | None = None) -> list[EvalItem]:
    """The items of the named subsets (all when none), then at most ``limit`` of them.

    The limit takes items round-robin over subsets, in file order within each, so a short
    smoke run still covers every subset and the same limit always picks the same items
    (a resumed run must see the same selection).
    """
    wanted = set(subsets)
    unknown = wanted - {item.subset for item in items}
    if unknown:
        raise ConfigError(f"unknown subsets {sorted(unknown)}; the data has {sorted({i.subset for i in items})}")
    chosen = [item for item in items if not wanted or item.subset in wanted]
    if limit is None or limit >= len(chosen):
        return chosen
    by_subset: dict[str, list[EvalItem]] = {}
    for item in chosen:
        by_subset.setdefault(item.subset, []).append(item)
    picked: list[EvalItem] = []
    for round_items in _round_robin(list(by_subset.values())):
        picked.append(round_items)
        if len(picked) == limit:
            break
    order = {item.id: position for position, item in enumerate(chosen)}
    return sorted(picked, key=lambda item: order[item.id])


def _round_robin(groups: list[list[EvalItem]]) -> Iterator[EvalItem]:
    for position in range(max(len(group) for group in groups)):
        for group in groups:
            if position < len(group):
                yield group[position]


@dataclass
class JobResult:
    """What a run left in its directory, and what it did this time."""

    report: BenchmarkReport
    scored: list[ScoredItem]
    stats: RunStats
    wall_s: float
    match: MatchAccount
    files: dict[str, Path] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)


async def run_job(
    items: Sequence[EvalItem],
    scorer: Scorer,
    directory: Path,
    *,
    cache_path: Path | None,
    concurrency: int,
    meta: dict[str, Any],
    match: MatchAccount | None = None,
    progress: ProgressCallback | None = None,
    plots: bool = True,
) -> JobResult:
    """Score what the store lacks, then write the report (JSON + Markdown) and the plots.

    ``meta`` is recorded in ``report.json`` next to the judge identity, the run's counts and how
    the cache keyed this scorer's scores; ``match`` (what a scores file covered; a judge covers
    every item) heads both reports.
    """
    match = match if match is not None else MatchAccount.complete(items)
    directory.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    cache = ScoreCache(cache_path) if cache_path is not None else None
    try:
        with ResultStore(directory / RESULTS_FILE) as store:
            scored, stats = await evaluate(items, scorer, store, concurrency=concurrency, cache=cache, progress=progress)
    finally:
        if cache is not None:
            cache.close()
    wall_s = time.perf_counter() - started
    report = compute_report(scored)
    meta = {
        **meta,
        "judge": scorer.identity,
        "items": len(items),
        "scored_now": stats.scored,
        "resumed": stats.skipped,
        "cache_hits": stats.cache_hits,
        "cache": scorer.scope.cache_rule if cache is not None else "off (no cache given)",
        "wall_s": round(wall_s, 1),
    }
    title = f"{report.benchmark}: {scorer.identity}"
    files = {
        "results": directory / RESULTS_FILE,
        "json": write_json([report], directory / "report.json", meta=meta, match=match),
        "markdown": write_markdown([report], directory / "report.md", title=title, match=match),
    }
    if plots:
        from cerm_reward.evaluation.plots import plot_report

        figures = plot_report(report, scored, directory / "plots")
        files.update({path.stem: path for path in figures})
    return JobResult(report, scored, stats, wall_s, match, files, meta)
