"""``cerm eval`` (also ``cerm needle eval``): score a benchmark with a judge and report its accuracy.

The command only parses flags, opens the scorer and shows progress; loading, scoring,
resuming, metrics, reports and plots are :mod:`cerm_reward.evaluation` (see
``docs/evaluation.md``).
"""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from cerm_reward.cli.choices import BenchmarkFormatChoice, EvalJudgeChoice, value_of
from cerm_reward.cli.flags import JudgeFlags, judge_settings
from cerm_reward.cli.options import (
    BaseUrlOption,
    CheckpointOption,
    ConfigOption,
    CriteriaTokensOption,
    EngineOption,
    EvalTokensOption,
    ModelOption,
    OnFailureOption,
    RepairOption,
    SamplesOption,
    VerboseOption,
    configure_logging,
    console,
)
from cerm_reward.config import CermConfig
from cerm_reward.data.items import EvalItem
from cerm_reward.data.loaders import LOADERS, load_items, looks_like_eval_items
from cerm_reward.errors import ConfigError, InputError
from cerm_reward.evaluation.job import JobResult, default_cache_path, run_job, select_items
from cerm_reward.evaluation.matching import MatchAccount, shown
from cerm_reward.evaluation.precomputed import PrecomputedScorer
from cerm_reward.evaluation.report import failure_ids_lines
from cerm_reward.evaluation.scorers import open_scorer
from cerm_reward.evaluation.scoring_loop import ProgressEvent
from cerm_reward.judges.registry import JUDGE_KINDS

INTERRUPTED = 130
"""Exit code of a run stopped with Ctrl-C (the shell's 128 + SIGINT); finished items stay stored."""


def _progress_columns() -> list[Any]:
    return [
        TextColumn("judging"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("items · {task.fields[rate]} · failed {task.fields[failed]} · cache {task.fields[hits]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    ]


async def _evaluate(
    items: list[EvalItem],
    judge: str,
    precomputed: Optional[PrecomputedScorer],
    settings: CermConfig,
    output_dir: Path,
    **job: Any,
) -> JobResult:
    started = time.perf_counter()
    with Progress(*_progress_columns(), console=console) as progress:
        task = progress.add_task("eval", total=len(items), rate="-", failed=0, hits=0)

        def on_progress(event: ProgressEvent) -> None:
            if event.item_id is None:  # the start: items found in the store are not this run's speed
                progress.reset(task, total=event.total, completed=event.done)
                return
            fresh = event.done - event.skipped
            rate = f"{fresh / max(time.perf_counter() - started, 1e-9):.2f}/s"
            progress.update(task, completed=event.done, rate=rate, failed=event.failures, hits=event.cache_hits)

        async with open_scorer(judge, settings, precomputed) as scorer:
            return await run_job(items, scorer, output_dir, progress=on_progress, **job)


def _print_result(result: JobResult) -> None:
    report = result.report
    table = Table(title=f"{report.benchmark} · {result.meta['judge']}")
    for column in ("subset", "n", "accuracy", "alt. ties", "ties", "failed", "failures by kind"):
        table.add_column(column, justify="left" if column in ("subset", "failures by kind") else "right")

    def pct(value: float | None) -> str:
        return "–" if value is None else f"{100 * value:.1f}"

    def kinds(failures: dict[str, int]) -> str:
        return ", ".join(f"{k}={v}" for k, v in sorted(failures.items())) or "none"

    for s in report.subsets:
        table.add_row(s.name, str(s.n), pct(s.accuracy), pct(s.accuracy_alt), str(s.ties), str(s.n_failed), kinds(s.failures))
    table.add_row(
        "overall",
        str(report.n),
        pct(report.overall),
        pct(report.overall_alt),
        str(report.ties),
        str(report.n_failed),
        kinds(report.failures),
        style="bold",
    )
    out = Console()
    out.print(f"scores matched: {result.match.summary()}", markup=False)
    out.print(table)
    out.print(f"ties: {report.tie_convention}; overall: {report.overall_rule}")
    for line in failure_ids_lines(report):
        out.print(f"  failed items, {line}", markup=False)
    for key, value in report.metrics.items():
        out.print(f"  {key} = {value:.4g}")
    stats = result.stats
    out.print(
        f"{stats.scored} items judged now, {stats.skipped} resumed from the store, {stats.cache_hits} responses from the "
        f"cache, in {result.wall_s:.1f} s"
    )
    for name, path in result.files.items():
        out.print(f"  {name}: {path}")


def _read_scores(
    scores: Optional[Path], items: list[EvalItem], selected: list[EvalItem], allow_partial: bool
) -> PrecomputedScorer:
    """The precomputed scores, matched to the selection before anything starts.

    A file that matches no item is refused; one that matches part of them is refused unless
    ``--allow-partial`` is given, and then announced, since its missing items count as failures.
    """
    if scores is None:
        raise ConfigError("--judge precomputed needs --scores FILE")
    precomputed = PrecomputedScorer(scores, items)
    match = precomputed.match(selected)
    if match.matched == 0:
        unknown = f"; its ids look like {shown(match.unknown_ids, 3)}" if match.unknown_ids else ""
        raise InputError(
            f"{scores}: no row matches any of the {match.items} items ({match.rows} rows{unknown}; "
            f"the items' ids look like {shown([item.id for item in selected], 3)})"
        )
    if match.is_partial:
        if not allow_partial:
            raise InputError(
                f"{scores}: scores for {match.matched} of {match.items} items; missing {shown(match.missing_ids, 3)}. "
                "Pass --allow-partial to score the missing items as missing_score failures"
            )
        console.print(f"[yellow]partial scores:[/yellow] {escape(match.summary())}", highlight=False)
    return precomputed


def _resolve_format(data: Path, format: Optional[BenchmarkFormatChoice]) -> str:
    if format is not None:
        return format.value
    if looks_like_eval_items(data):
        return "items"
    raise typer.BadParameter(f"say which benchmark {data} holds: --format {{{','.join(LOADERS)}}}", param_hint="--format")


def eval_command(
    data: Annotated[Path, typer.Argument(exists=True, help="A benchmark file, or a directory of .json/.jsonl files.")],
    output_dir: Annotated[
        Path, typer.Option("--output-dir", "-o", help="Run directory: results.jsonl, report.json/.md, plots/.")
    ],
    format: Annotated[
        Optional[BenchmarkFormatChoice],
        typer.Option(
            "--format",
            "-f",
            help="Benchmark format (items: files `cerm needle build` writes) [default: items, if the rows are items].",
        ),
    ] = None,
    judge: Annotated[
        EvalJudgeChoice, typer.Option("--judge", help="Scorer: a judge kind, the pairwise baseline, or precomputed scores.")
    ] = EvalJudgeChoice("cerm"),
    scores: Annotated[
        Optional[Path],
        typer.Option("--scores", exists=True, dir_okay=False, help="--judge precomputed: JSONL of {id, scores} per item."),
    ] = None,
    allow_partial: Annotated[
        bool,
        typer.Option("--allow-partial", help="--judge precomputed: run when the scores cover only some items (the rest fail)."),
    ] = False,
    checkpoint: CheckpointOption = None,
    subsets: Annotated[Optional[list[str]], typer.Option("--subset", help="Only these subsets (repeatable).")] = None,
    limit: Annotated[
        Optional[int], typer.Option("--limit", min=1, help="At most N items, taken round-robin over subsets.")
    ] = None,
    concurrency: Annotated[int, typer.Option("--concurrency", min=1, help="Items in flight at once.")] = 4,
    cache: Annotated[
        Optional[Path], typer.Option("--cache", help="Score cache (SQLite) shared by runs [default: user cache].")
    ] = None,
    no_cache: Annotated[bool, typer.Option("--no-cache", help="Judge everything anew; read and write no cache.")] = False,
    plots: Annotated[
        Optional[bool],
        typer.Option("--plots/--no-plots", help="Write PNG figures (the eval extra: matplotlib) [default: when installed]."),
    ] = None,
    wandb_project: Annotated[
        Optional[str], typer.Option("--wandb-project", help="Also log the report to this W&B project.")
    ] = None,
    config: ConfigOption = None,
    model: ModelOption = None,
    engine: EngineOption = None,
    base_url: BaseUrlOption = None,
    criteria_max_tokens: CriteriaTokensOption = None,
    eval_max_tokens: EvalTokensOption = None,
    samples: SamplesOption = None,
    repair: RepairOption = None,
    on_failure: OnFailureOption = None,
    verbose: VerboseOption = False,
) -> None:
    """Score a benchmark with a judge and report its accuracy as the benchmark defines it.

    Rerunning the same command in the same --output-dir resumes it: finished items are kept.

    Needle items (from `cerm needle build`) also get the length x position grid.
    """
    configure_logging(verbose)
    flags = JudgeFlags(
        judge=judge.value if judge.value in JUDGE_KINDS else None,  # pairwise and precomputed keep the configured kind
        checkpoint=checkpoint,
        model=model,
        engine=engine,
        base_url=base_url,
        criteria_max_tokens=criteria_max_tokens,
        eval_max_tokens=eval_max_tokens,
        samples=samples,
        repair=repair,
        on_failure=on_failure,
    )
    settings = judge_settings(config, flags)
    plots = _plots_wanted(plots)
    benchmark_format = _resolve_format(data, format)
    subsets = subsets or []
    loaded = load_items(benchmark_format, data)
    items = select_items(loaded, subsets=subsets, limit=limit)
    if not items:
        raise InputError(f"{data} holds no items")
    if scores is not None and judge.value != "precomputed":
        raise ConfigError(f"--scores is read only with --judge precomputed, not --judge {judge.value}")
    precomputed = _read_scores(scores, loaded, items, allow_partial) if judge.value == "precomputed" else None
    match = precomputed.match(items) if precomputed is not None else MatchAccount.complete(items)
    meta = {
        "command": "cerm " + " ".join(sys.argv[1:]),
        "data": str(data),
        "format": benchmark_format,
        "subsets": list(subsets),
        "limit": limit,
        "model": settings.engine.model or "embedded",
    }
    cache_path = None if no_cache else (cache or default_cache_path())
    try:
        result = asyncio.run(
            _evaluate(
                items,
                value_of(judge),
                precomputed,
                settings,
                output_dir,
                cache_path=cache_path,
                concurrency=concurrency,
                meta=meta,
                match=match,
                plots=plots,
            )
        )
    except KeyboardInterrupt:
        console.print(f"[yellow]interrupted:[/yellow] finished items are in {output_dir}; rerun the command to resume")
        raise typer.Exit(INTERRUPTED) from None
    if result.report.benchmark == "needle":
        _needle_outputs(result, output_dir, plots)
    if wandb_project:
        from cerm_reward.evaluation.wandb_log import log_report

        figures = [path for path in result.files.values() if path.suffix == ".png"]
        run_dir = log_report(wandb_project, result.report, result.meta, figures, directory=output_dir)
        result.files["wandb"] = run_dir
    _print_result(result)


def _plots_wanted(requested: Optional[bool]) -> bool:
    """Plots when asked, or by default when matplotlib is installed (the core install has none)."""
    from cerm_reward.evaluation.plots import plots_available

    if requested and not plots_available():
        raise ConfigError("--plots needs matplotlib: pip install '.[eval]' (or pass --no-plots)")
    return plots_available() if requested is None else requested


def _needle_outputs(result: JobResult, output_dir: Path, plots: bool) -> None:
    """The needle grid (JSON, and a heatmap) next to the pairwise report."""
    import json

    from cerm_reward.evaluation.needle import needle_grid

    grid = needle_grid(result.scored)
    path = output_dir / "needle-grid.json"
    path.write_text(json.dumps(grid.to_dict(), indent=2) + "\n", encoding="utf-8")
    result.files["needle_grid"] = path
    if plots:
        from cerm_reward.evaluation.plots import plot_needle_heatmap

        result.files["needle_heatmap"] = plot_needle_heatmap(grid, output_dir / "plots" / "needle-heatmap.png")
