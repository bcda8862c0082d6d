"""``cerm score``: score a rollouts file with the configured judge, resumably."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from cerm_reward.cli.choices import value_of
from cerm_reward.cli.flags import JudgeFlags, judge_settings
from cerm_reward.cli.options import (
    BaseUrlOption,
    CheckpointOption,
    ConfigOption,
    CriteriaTokensOption,
    EngineOption,
    EvalTokensOption,
    JudgeKindOption,
    ModelOption,
    OnFailureOption,
    RepairOption,
    SamplesOption,
    VerboseOption,
    configure_logging,
    console,
)
from cerm_reward.config import CermConfig


def score(
    input_path: Annotated[
        Path, typer.Argument(help="Rollouts JSONL: {query, responses, id?} per line.", exists=True, dir_okay=False)
    ],
    output: Annotated[Path, typer.Option("--output", "-o", help="Output JSONL (appended to; a rerun resumes).")],
    config: ConfigOption = None,
    judge: JudgeKindOption = None,
    checkpoint: CheckpointOption = None,
    model: ModelOption = None,
    engine: EngineOption = None,
    base_url: BaseUrlOption = None,
    criteria_max_tokens: CriteriaTokensOption = None,
    eval_max_tokens: EvalTokensOption = None,
    samples: SamplesOption = None,
    repair: RepairOption = None,
    on_failure: OnFailureOption = None,
    concurrency: Annotated[int, typer.Option(min=1, help="Groups in flight at once.")] = 8,
    skip_invalid: Annotated[bool, typer.Option(help="Skip invalid input lines (reported) instead of stopping.")] = False,
    verbose: VerboseOption = False,
) -> None:
    """Score every group of INPUT_PATH and append one line per response to --output.

    The CE-RM judge by default; --judge critic_rm --checkpoint DIR scores with Critic-RM.
    """
    from cerm_reward.scoring.output import ResumableJsonlWriter
    from cerm_reward.scoring.rollouts import read_rollouts

    configure_logging(verbose)
    flags = JudgeFlags(
        judge=value_of(judge),
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
    groups, problems = read_rollouts(input_path, skip_invalid=skip_invalid)
    for line, message in problems:
        console.print(f"[yellow]skipped[/yellow] {input_path}:{line}: {message}")
    writer = ResumableJsonlWriter(output)  # locked and checked before an engine loads
    try:
        if writer.repaired_tail:
            console.print(f"[yellow]note:[/yellow] dropped a partial last line of {output} (it will be redone)")
        left = sum(not writer.is_done(g.id, i) for g in groups for i in range(len(g.responses)))
        if not left:
            what = "holds no group" if not groups else f"is fully scored in {output}"
            console.print(f"nothing to score: {input_path} {what}; no engine started")
            return
        summary = asyncio.run(_score(settings, groups, writer, concurrency))
    finally:
        writer.close()
    _print_summary(summary, output)


async def _score(settings: CermConfig, groups: list, writer: Any, concurrency: int) -> Any:
    from cerm_reward.judges.registry import open_judge
    from cerm_reward.scoring.groups import score_groups

    total = sum(len(g.responses) for g in groups)
    judge = await open_judge(settings)
    try:
        columns = [
            TextColumn("scoring"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("responses"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
        ]
        with Progress(*columns, console=console) as progress:
            task = progress.add_task("score", total=total)
            summary = await score_groups(
                judge, groups, writer, concurrency=concurrency, on_progress=lambda n: progress.advance(task, n)
            )
    finally:
        await judge.engine.aclose()
    summary.judge["model"] = judge.model_id
    return summary


def _print_summary(summary: Any, output: Path) -> None:
    judge = summary.judge
    cache = judge.get("criteria_cache", {})
    failures = judge.get("failures", {})
    table = Table(title="cerm score", show_header=False)
    criteria_rows = [
        ("criteria generations", judge["criteria_generations"]),
        ("criteria cache hits / joined", f"{cache.get('hits', 0)} / {cache.get('joined', 0)}"),
    ]
    rows = [
        ("judge model", judge.get("model", "?")),
        ("groups scored", summary.groups),
        ("responses scored", summary.responses),
        ("responses already done (resumed)", summary.skipped_done),
        *(criteria_rows if "criteria_cache" in judge else []),  # Critic-RM writes no criteria
        ("failures by kind", ", ".join(f"{k}={v}" for k, v in sorted(failures.items())) or "none"),
        (
            "failed attempts (incl. recovered)",
            ", ".join(f"{k}={v}" for k, v in sorted(judge["attempt_failures"].items())) or "none",
        ),
        ("flags", ", ".join(f"{k}={v}" for k, v in sorted(judge["flags"].items())) or "none"),
        ("repairs succeeded / attempted", f"{judge['repairs_succeeded']} / {judge['repairs_attempted']}"),
        ("tokens in / out", f"{judge['prompt_tokens']} / {judge['completion_tokens']}"),
        ("wall time", f"{summary.wall_s:.1f} s"),
        ("responses/s", f"{summary.responses_per_s:.2f}"),
        ("output", str(output)),
    ]
    for name, value in rows:
        table.add_row(name, str(value))
    out = Console()
    out.print(table)
    out.print(f"One JSON line per response (score, failure, criteria, evaluation) is in {output}; see docs/cli.md.")
    from cerm_reward.engines.embedded import EMBEDDED_MODEL_ID

    if judge.get("model") == EMBEDDED_MODEL_ID:
        out.print(
            "The embedded judge is a small smoke-test model; for real rewards pass --model PKU-ONELab/CE-RM-4B "
            "(or -c recipes/judge/ce-rm-4b.yaml) on a GPU: docs/configuration.md."
        )
