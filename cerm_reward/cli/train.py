"""``cerm train ...``: preparing data to train a CE-RM judge (registered in ``cerm_reward.cli.app``)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from cerm_reward.training.cerm.settings import TwoStageSettings

train_app = typer.Typer(help="Train a CE-RM judge: data curation for the two-stage rollout.", no_args_is_help=True)
console = Console(stderr=True)
_DEFAULTS = TwoStageSettings()


@train_app.command("prepare-data")
def prepare_data(
    source: str = typer.Argument(
        ..., help="Preference pairs: a file or folder in --format, or a parquet/HF dataset (--format table)."
    ),
    format: str = typer.Option("pairs", "--format", "-f", help="pairs, llmbar, rm-bench, ... (cerm eval's loaders) or table."),
    verl_output: Optional[Path] = typer.Option(None, "--verl-output", help="verl parquet to write (agent_name set)."),
    openrlhf_output: Optional[Path] = typer.Option(None, "--openrlhf-output", help="OpenRLHF jsonl to write."),
    split: str = typer.Option("train", help="Split of a HF dataset; also recorded in verl's extra_info."),
    max_pairs_per_item: Optional[int] = typer.Option(
        None, help="Cap on (chosen, rejected) combinations per item (RM-Bench has 9)."
    ),
    limit: Optional[int] = typer.Option(None, help="Keep only the first N pairs read."),
    tokenizer: Optional[str] = typer.Option(None, help="Judge tokenizer for the lengths (default: the judge model)."),
    model: Optional[str] = typer.Option(None, help="Judge model to train and to filter with (default: the embedded judge)."),
    max_prompt_length: int = typer.Option(8192, help="The training run's data.max_prompt_length (stage-2 prompts must fit)."),
    criteria_max_tokens: int = typer.Option(_DEFAULTS.criteria.max_tokens, help="The training run's criteria budget."),
    template: str = typer.Option(_DEFAULTS.template, help="Judge template version or YAML file."),
    difficulty_rounds: int = typer.Option(0, help="Score each pair k times with the current judge; keep mixed pairs (0 = off)."),
    config: Optional[Path] = typer.Option(
        None, "--config", "-c", help="Judge YAML for the difficulty filter.", exists=True, dir_okay=False
    ),
    temperature: float = typer.Option(0.7, help="Sampling temperature of the filter's criteria and evaluations."),
) -> None:
    """Curate preference pairs into judge-training data for verl and/or OpenRLHF."""
    from cerm_reward.data.loaders import FormatError
    from cerm_reward.data.pairs import PairFormatError, input_formats, read_pairs
    from cerm_reward.training.cerm.outputs import openrlhf_judge_lines, verl_judge_rows, write_jsonl, write_verl_parquet
    from cerm_reward.training.cerm.prepare import CurationOptions

    if verl_output is None and openrlhf_output is None:
        raise typer.BadParameter("give --verl-output and/or --openrlhf-output")
    if format not in input_formats():
        raise typer.BadParameter(f"unknown format {format!r}; choose from {', '.join(input_formats())}", param_hint="--format")
    try:
        pairs = read_pairs(source, format, split=split, max_pairs_per_item=max_pairs_per_item)
    except (FormatError, PairFormatError, FileNotFoundError) as error:
        console.print(f"[red]{source}: {error}[/red]")
        raise typer.Exit(2) from error
    pairs = pairs[:limit] if limit is not None else pairs
    options = CurationOptions(max_prompt_length, criteria_max_tokens, template, difficulty_rounds=difficulty_rounds)
    try:
        kept, report = asyncio.run(_curate(pairs, options, tokenizer, model, config, temperature))
    except ValueError as error:
        console.print(f"[red]error:[/red] {error}")
        raise typer.Exit(2) from error
    for line in report.lines():
        console.print(line)
    if not kept:
        console.print("[red]no pair survived curation; nothing written[/red]")
        raise typer.Exit(1)
    if verl_output is not None:
        write_verl_parquet(verl_judge_rows(kept, split=split), verl_output)
        console.print(f"wrote {len(kept)} pairs to {verl_output}")
    if openrlhf_output is not None:
        write_jsonl(openrlhf_judge_lines(kept), openrlhf_output)
        console.print(f"wrote {len(kept)} pairs to {openrlhf_output}")


async def _curate(pairs, options, tokenizer_name, model, config_path, temperature):
    """Load the tokenizer (and the judge, when filtering) and run the curation with a progress bar."""
    from transformers import AutoTokenizer

    from cerm_reward.config import CermConfig
    from cerm_reward.training.cerm.prepare import curate

    settings = CermConfig.from_file(config_path) if config_path else CermConfig()
    if model is not None:
        settings = settings.with_overrides({"engine.model": model})
    model_path = settings.engine.model
    if tokenizer_name is None and model_path is None:
        from cerm_reward.engines.embedded import embedded_checkpoint

        tokenizer_name = str(embedded_checkpoint())
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_name or model_path)
    if not options.difficulty_rounds:
        return await curate(pairs, options, tokenizer=tokenizer)
    from cerm_reward.engines import open_engine

    judge = settings.judge.model_copy(
        update={
            "criteria": settings.judge.criteria.model_copy(update={"temperature": temperature}),
            "evaluation": settings.judge.evaluation.model_copy(update={"temperature": temperature}),
        }
    )
    engine = await open_engine(settings.engine)
    try:
        columns = (TextColumn("difficulty filter"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
        with Progress(*columns, console=console, transient=True) as progress:
            task = progress.add_task("judging", total=None)
            return await curate(
                pairs,
                options,
                tokenizer=tokenizer,
                engine=engine,
                judge_config=judge,
                on_pair_judged=lambda: progress.advance(task),
            )
    finally:
        await engine.aclose()


@train_app.command("distill-sft")
def distill_sft(
    source: str = typer.Argument(..., help="Preference pairs, as for prepare-data."),
    output: Path = typer.Option(..., "--output", "-o", help="verl multi-turn SFT parquet to write (column 'messages')."),
    format: str = typer.Option("pairs", "--format", "-f", help="pairs, llmbar, rm-bench, ... or table."),
    config: Optional[Path] = typer.Option(
        None, "--config", "-c", help="Teacher judge YAML (e.g. recipes/judge/ce-rm-4b-http.yaml).", exists=True, dir_okay=False
    ),
    model: Optional[str] = typer.Option(None, help="Teacher judge model (overrides the config)."),
    limit: Optional[int] = typer.Option(None, help="Keep only the first N pairs read."),
    max_pairs_per_item: Optional[int] = typer.Option(None, help="Cap on (chosen, rejected) combinations per item."),
) -> None:
    """Distil SFT warm-start conversations from a stronger judge; keep pairs it ranks right."""
    from cerm_reward.data.pairs import read_pairs

    pairs = read_pairs(source, format, max_pairs_per_item=max_pairs_per_item)
    pairs = pairs[:limit] if limit is not None else pairs
    rows, counts = asyncio.run(_distill(pairs, config, model))
    console.print(", ".join(f"{kind} {count}" for kind, count in sorted(counts.items())))
    if not rows:
        console.print("[red]the teacher ranked no pair right; nothing written[/red]")
        raise typer.Exit(1)
    import pandas as pd

    output.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).to_parquet(output, index=False)
    console.print(f"wrote {len(rows)} conversations to {output}")


async def _distill(pairs, config_path, model):
    from cerm_reward.config import CermConfig
    from cerm_reward.engines import open_engine
    from cerm_reward.judges.cerm.judge import CermJudge
    from cerm_reward.training.cerm.distill import distill_conversations

    settings = CermConfig.from_file(config_path) if config_path else CermConfig()
    if model is not None:
        settings = settings.with_overrides({"engine.model": model})
    engine = await open_engine(settings.engine)
    try:
        columns = (TextColumn("distilling"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
        with Progress(*columns, console=console, transient=True) as progress:
            task = progress.add_task("pairs", total=len(pairs))
            return await distill_conversations(
                pairs, CermJudge(engine, settings.judge), on_pair_done=lambda: progress.advance(task)
            )
    finally:
        await engine.aclose()


@train_app.command("openrlhf-agent")
def openrlhf_agent() -> None:
    """Print the path of the AgentExecutor file for OpenRLHF's --train.agent_func_path (it needs openrlhf installed)."""
    from importlib.util import find_spec

    spec = find_spec("cerm_reward.integrations.openrlhf.judge_agent")
    print(spec.origin)
