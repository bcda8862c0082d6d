"""``cerm eval`` and ``cerm needle build|eval``: benchmark runs from the command line.

The commands only parse flags, open the scorer and show progress; loading, scoring,
resuming, metrics, reports and plots are :mod:`cerm_reward.evaluation` (see
``docs/evaluation.md``).
"""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path
from typing import Any, Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

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
    judge_settings,
)
from cerm_reward.config import CermConfig
from cerm_reward.data.items import EvalItem
from cerm_reward.data.loaders import LOADERS, FormatError, load_items, looks_like_eval_items
from cerm_reward.evaluation.job import JobResult, default_cache_path, run_job, select_items
from cerm_reward.evaluation.scorers import JUDGE_KINDS, open_scorer
from cerm_reward.evaluation.scoring_loop import ProgressEvent

needle_app = typer.Typer(help="Long-form RewardBench's needle-in-a-haystack test: build minimal pairs, then evaluate.")


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
    scores: Optional[Path],
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

        async with open_scorer(judge, settings, items, scores) as scorer:
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
    out.print(table)
    out.print(f"ties: {report.tie_convention}; overall: {report.overall_rule}")
    for key, value in report.metrics.items():
        out.print(f"  {key} = {value:.4g}")
    stats = result.stats
    out.print(
        f"{stats.scored} items judged now, {stats.skipped} resumed from the store, {stats.cache_hits} responses from the "
        f"cache, in {result.wall_s:.1f} s"
    )
    for name, path in result.files.items():
        out.print(f"  {name}: {path}")


def _resolve_format(data: Path, format: Optional[str]) -> str:
    if format is not None:
        if format not in LOADERS:
            raise typer.BadParameter(f"unknown format {format!r}; choose from {', '.join(LOADERS)}", param_hint="--format")
        return format
    if looks_like_eval_items(data):
        return "items"
    raise typer.BadParameter(f"say which benchmark {data} holds: --format {{{','.join(LOADERS)}}}", param_hint="--format")


def eval_command(
    data: Path = typer.Argument(..., exists=True, help="A benchmark file, or a directory of .json/.jsonl files."),
    output_dir: Path = typer.Option(..., "--output-dir", "-o", help="Run directory: results.jsonl, report.json/.md, plots/."),
    format: Optional[str] = typer.Option(
        None, "--format", "-f", help=f"Benchmark format: {', '.join(LOADERS)} (items: files `cerm needle build` writes)."
    ),
    judge: str = typer.Option("cerm", "--judge", help=f"Scorer: {', '.join(JUDGE_KINDS)}."),
    scores: Optional[Path] = typer.Option(
        None, "--scores", exists=True, dir_okay=False, help="--judge precomputed: JSONL of {id, scores} per item."
    ),
    checkpoint: Optional[Path] = CheckpointOption,
    subsets: list[str] = typer.Option([], "--subset", help="Only these subsets (repeatable)."),
    limit: Optional[int] = typer.Option(None, "--limit", min=1, help="At most N items, taken round-robin over subsets."),
    concurrency: int = typer.Option(4, "--concurrency", min=1, help="Items in flight at once."),
    cache: Optional[Path] = typer.Option(None, "--cache", help="Score cache (SQLite) shared by runs [default: user cache]."),
    no_cache: bool = typer.Option(False, "--no-cache", help="Judge everything anew; read and write no cache."),
    plots: bool = typer.Option(True, "--plots/--no-plots", help="Write PNG figures (needs the eval extra: matplotlib)."),
    wandb_project: Optional[str] = typer.Option(None, "--wandb-project", help="Also log the report to this W&B project."),
    config: Optional[Path] = ConfigOption,
    model: Optional[str] = ModelOption,
    engine: Optional[str] = EngineOption,
    base_url: Optional[str] = BaseUrlOption,
    criteria_max_tokens: Optional[int] = CriteriaTokensOption,
    eval_max_tokens: Optional[int] = EvalTokensOption,
    samples: Optional[int] = SamplesOption,
    repair: Optional[bool] = RepairOption,
    on_failure: Optional[str] = OnFailureOption,
    verbose: bool = VerboseOption,
) -> None:
    """Score a benchmark with a judge and report its accuracy as the benchmark defines it.

    Rerunning the same command in the same --output-dir resumes it: finished items are kept.

    Needle items (from `cerm needle build`) also get the length x position grid.
    """
    configure_logging(verbose)
    try:
        settings = judge_settings(config, locals())
        benchmark_format = _resolve_format(data, format)
        items = select_items(load_items(benchmark_format, data), subsets=subsets, limit=limit)
    except (FormatError, ValueError, KeyError) as error:
        console.print(f"[red]error:[/red] {error}")
        raise typer.Exit(2) from None
    if not items:
        console.print(f"[red]error:[/red] {data} holds no items")
        raise typer.Exit(2)
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
                judge,
                scores,
                settings,
                output_dir,
                cache_path=cache_path,
                concurrency=concurrency,
                meta=meta,
                plots=plots,
            )
        )
    except KeyboardInterrupt:
        console.print(f"[yellow]interrupted:[/yellow] finished items are in {output_dir}; rerun the command to resume")
        raise typer.Exit(130) from None
    except ValueError as error:  # a store of another judge, an inconsistent precomputed file
        console.print(f"[red]error:[/red] {error}")
        raise typer.Exit(2) from None
    if result.report.benchmark == "needle":
        _needle_outputs(result, output_dir, plots)
    if wandb_project:
        from cerm_reward.evaluation.wandb_log import log_report

        figures = [path for path in result.files.values() if path.suffix == ".png"]
        run_dir = log_report(wandb_project, result.report, result.meta, figures, directory=output_dir)
        result.files["wandb"] = run_dir
    _print_result(result)


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


needle_app.command("eval")(eval_command)


@needle_app.command("build")
def needle_build(
    bases: Path = typer.Argument(..., exists=True, dir_okay=False, help="Long responses: {id?, prompt, response} per row."),
    output: Path = typer.Option(..., "--output", "-o", help="Items JSONL to write (input of `cerm needle eval`)."),
    facts: Optional[Path] = typer.Option(None, "--facts", exists=True, dir_okay=False, help="{true, false} fact pairs."),
    safety: Optional[Path] = typer.Option(None, "--safety", exists=True, dir_okay=False, help="{safe, harmful} phrases."),
    rewrite: bool = typer.Option(False, "--rewrite", help="Also plant an error in each chunk with the judge engine."),
    seed: int = typer.Option(0, "--seed", help="Chunk and fact selection seed (same inputs + seed = same items)."),
    per_1000: float = typer.Option(4.0, "--per-1000", min=0.1, help="Chunks tagged per 1,000 words."),
    min_words: int = typer.Option(30, "--min-words", min=1, help="Smallest chunk, in words."),
    config: Optional[Path] = ConfigOption,
    model: Optional[str] = ModelOption,
    engine: Optional[str] = EngineOption,
    base_url: Optional[str] = BaseUrlOption,
    eval_max_tokens: Optional[int] = EvalTokensOption,
    verbose: bool = VerboseOption,
) -> None:
    """Build minimal pairs that differ in one chunk of a long response, for each perturbation given."""
    import json

    configure_logging(verbose)
    if not (facts or safety or rewrite):
        console.print("[red]error:[/red] give at least one perturbation: --facts, --safety or --rewrite")
        raise typer.Exit(2)
    settings = judge_settings(config, locals())
    try:
        items = asyncio.run(_build_needles(bases, facts, safety, rewrite, settings, seed, per_1000, min_words))
    except (FormatError, KeyError, ValueError) as error:
        console.print(f"[red]error:[/red] {error}")
        raise typer.Exit(2) from None
    output.parent.mkdir(parents=True, exist_ok=True)
    with output.open("w", encoding="utf-8") as handle:
        for item in items:
            handle.write(json.dumps(item.to_dict(), ensure_ascii=False) + "\n")
    by_kind: dict[str, int] = {}
    for item in items:
        by_kind[item.subset] = by_kind.get(item.subset, 0) + 1
    kinds = ", ".join(f"{kind}={count}" for kind, count in by_kind.items()) or "none"
    console.print(f"wrote {len(items)} needle pairs ({kinds}) to {output}")


async def _build_needles(
    bases_path: Path,
    facts: Optional[Path],
    safety: Optional[Path],
    rewrite: bool,
    settings: CermConfig,
    seed: int,
    per_1000: float,
    min_words: int,
) -> list[EvalItem]:
    from cerm_reward.evaluation import needle

    bases = needle.load_needle_bases(bases_path)
    perturbations: list[needle.Perturbation] = []
    if facts:
        perturbations.append(needle.FactPerturbation(needle.load_fact_pairs(facts)))
    if safety:
        perturbations.append(needle.SafetyPerturbation(needle.load_safety_phrases(safety)))
    engine = None
    if rewrite:
        from cerm_reward.engines import GenerationParams, open_engine

        engine = await open_engine(settings.engine)
        params = GenerationParams.of(settings.judge.evaluation)

        async def plant_error(chunk: str) -> str:
            result = await engine.chat(needle.rewrite_messages(chunk), params)
            return result.completions[0].text

        perturbations.append(needle.RewritePerturbation(plant_error))
    try:
        items: list[EvalItem] = []
        for perturbation in perturbations:
            items += await needle.build_needle_items(bases, perturbation, seed=seed, per_1000=per_1000, min_words=min_words)
        return items
    finally:
        if engine is not None:
            await engine.aclose()
