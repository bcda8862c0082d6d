"""``cerm bench``: the judge measured against baselines on this machine, each figure with its target;
``cerm bench --train critic``: the Critic-RM trainer's packed batches against padded ones."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import sys
import time
from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.progress import Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from cerm_reward.bench.figures import Figure
from cerm_reward.cli.options import ModelOption, VerboseOption, configure_logging, console

TARGET_MISSED = 1
"""Exit code when a figure misses its target (the run itself succeeded)."""


class TrainBench(str, Enum):
    """``--train``: the trainer whose batching is measured instead of the judge."""

    critic = "critic"


def bench(
    data: Annotated[
        Path,
        typer.Option(
            "--data",
            exists=True,
            dir_okay=False,
            help="Rollouts JSONL: queries and response texts (examples/rollouts.jsonl); "
            "with --train critic: an LLMBar pairs file.",
        ),
    ],
    output: Annotated[
        Optional[Path], typer.Option("--output", help="Markdown file whose bench block is rewritten (default: print only).")
    ] = None,
    model: ModelOption = None,
    groups: Annotated[Optional[int], typer.Option("--groups", min=1, help="Groups per timed run.")] = None,
    n: Annotated[Optional[int], typer.Option("--n", min=2, help="Responses per group (the targets' n).")] = None,
    group_sizes: Annotated[
        Optional[str], typer.Option("--group-sizes", help="Comma-separated n values for the criteria and pairwise sections.")
    ] = None,
    criteria_tokens: Annotated[
        Optional[int], typer.Option("--criteria-tokens", min=1, help="Fixed criteria length (ignore_eos).")
    ] = None,
    evaluation_tokens: Annotated[
        Optional[int], typer.Option("--eval-tokens", min=1, help="Fixed evaluation / verdict length (ignore_eos).")
    ] = None,
    repeats: Annotated[
        Optional[int], typer.Option("--repeats", min=1, help="Timed cold runs per side of each A/B figure (after a warm-up).")
    ] = None,
    sections: Annotated[
        Optional[str],
        typer.Option("--sections", help="Comma-separated subset of the sections (default: all; docs/performance.md)."),
    ] = None,
    train: Annotated[
        Optional[TrainBench],
        typer.Option("--train", help="Measure a trainer's packed vs padded batches instead of the judge (no engine)."),
    ] = None,
    train_steps: Annotated[
        Optional[int], typer.Option("--train-steps", min=1, help="Timed optimizer steps per path with --train.")
    ] = None,
    verbose: VerboseOption = False,
) -> None:
    """Measure the judge against baselines in one run on this machine; print each figure with its target.

    Exit code 1 when a figure misses its target. Unset options take BenchOptions' defaults.
    """
    from cerm_reward.bench.suite import SECTIONS, BenchOptions, machine_line, run_bench, write_report

    configure_logging(verbose)
    if train is not None:
        _bench_training(data, output, train_steps)
        return
    if not verbose:  # the bench builds many judges; their start-up lines would bury the progress line
        logging.getLogger("cerm_reward").setLevel(logging.WARNING)
    given = {
        "model": model,
        "groups": groups,
        "n": n,
        "group_sizes": _numbers(group_sizes),
        "criteria_tokens": criteria_tokens,
        "evaluation_tokens": evaluation_tokens,
        "repeats": repeats,
        "sections": _names(sections, SECTIONS),
    }
    options = dataclasses.replace(BenchOptions(data=data), **{k: v for k, v in given.items() if v is not None})
    started = time.perf_counter()
    with Progress(TextColumn("{task.description}"), TimeElapsedColumn(), console=console, transient=True) as progress:
        task = progress.add_task("bench", total=None)
        figures = asyncio.run(run_bench(options, lambda name: progress.update(task, description=name)))
    _show(figures, started)
    if output is not None:
        command = "cerm " + " ".join(sys.argv[1:])
        write_report(output, figures, command, machine_line(model or "embedded SmolLM2-135M-Instruct"))
        console.print(f"figures written to {output}")
    if any(figure.passed is False for figure in figures):
        raise typer.Exit(TARGET_MISSED)


def _bench_training(data: Path, output: Optional[Path], steps: Optional[int]) -> None:
    """``--train critic``: both batch layouts of the Critic-RM trainer, one run, one report block of its own."""
    from cerm_reward.bench.critic_training import MARKERS, TrainBenchOptions, machine_line, train_critic
    from cerm_reward.bench.suite import write_report

    options = TrainBenchOptions(data=data) if steps is None else TrainBenchOptions(data=data, steps=steps)
    started = time.perf_counter()
    with Progress(TextColumn("{task.description}"), TimeElapsedColumn(), console=console, transient=True) as progress:
        task = progress.add_task("bench", total=None)
        figures = train_critic(options, lambda name: progress.update(task, description=name))
    _show(figures, started)
    if output is not None:
        write_report(output, figures, "cerm " + " ".join(sys.argv[1:]), machine_line(options), MARKERS)
        console.print(f"figures written to {output}")
    if any(figure.passed is False for figure in figures):
        raise typer.Exit(TARGET_MISSED)


def _show(figures: list[Figure], started: float) -> None:
    table = Table(title=f"cerm bench ({time.perf_counter() - started:.0f} s)")
    for column in ("section", "figure", "value", "target", "result", "how"):
        table.add_column(column, overflow="fold")
    for figure in figures:
        style = {True: "green", False: "bold red", None: ""}[figure.passed]
        table.add_row(
            figure.section,
            figure.name,
            figure.shown(),
            figure.target or "-",
            f"[{style}]{figure.verdict}[/]" if style else figure.verdict,
            figure.detail,
        )
    Console().print(table)


def _numbers(text: Optional[str]) -> Optional[tuple[int, ...]]:
    if text is None:
        return None
    try:
        return tuple(int(size) for size in text.split(","))
    except ValueError:
        raise typer.BadParameter(f"expected comma-separated integers, got {text!r}", param_hint="--group-sizes") from None


def _names(text: Optional[str], known: tuple[str, ...]) -> Optional[tuple[str, ...]]:
    if text is None:
        return None
    chosen = tuple(name.strip() for name in text.split(",") if name.strip())
    unknown = sorted(set(chosen) - set(known))
    if unknown:
        raise typer.BadParameter(f"unknown sections {unknown}; choose from {', '.join(known)}", param_hint="--sections")
    return chosen
