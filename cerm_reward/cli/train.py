"""``cerm train ...``: preparing data to train a CE-RM judge."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from cerm_reward.cli.choices import PairFormatChoice
from cerm_reward.cli.options import console
from cerm_reward.config import CermConfig

NOTHING_WRITTEN = 1
"""Exit code when the run worked but no pair was kept, so no file was written."""

FormatOption = Annotated[
    PairFormatChoice, typer.Option("--format", "-f", help="cerm eval's loaders, or table (parquet / HF dataset).")
]


def prepare_data(
    source: Annotated[
        str, typer.Argument(help="Preference pairs: a file or folder in --format, or a parquet/HF dataset (--format table).")
    ],
    format: FormatOption = PairFormatChoice("pairs"),
    verl_output: Annotated[Optional[Path], typer.Option("--verl-output", help="verl parquet to write (agent_name set).")] = None,
    openrlhf_output: Annotated[Optional[Path], typer.Option("--openrlhf-output", help="OpenRLHF jsonl to write.")] = None,
    split: Annotated[str, typer.Option(help="Split of a HF dataset; also recorded in verl's extra_info.")] = "train",
    max_pairs_per_item: Annotated[
        Optional[int], typer.Option(help="Cap on (chosen, rejected) combinations per item (RM-Bench has 9).")
    ] = None,
    limit: Annotated[Optional[int], typer.Option(help="Keep only the first N pairs read.")] = None,
    tokenizer: Annotated[Optional[str], typer.Option(help="Judge tokenizer for the lengths (default: the judge model).")] = None,
    model: Annotated[
        Optional[str], typer.Option(help="Judge model to train and to filter with (default: the embedded judge).")
    ] = None,
    max_prompt_length: Annotated[
        int, typer.Option(help="The training run's data.max_prompt_length (stage-2 prompts must fit).")
    ] = 8192,
    criteria_max_tokens: Annotated[
        Optional[int], typer.Option(help="The training run's criteria budget [default: the two-stage settings'].")
    ] = None,
    template: Annotated[
        Optional[str], typer.Option(help="Judge template version or YAML file [default: the two-stage settings'].")
    ] = None,
    difficulty_rounds: Annotated[
        int, typer.Option(help="Score each pair k times with the current judge; keep mixed pairs (0 = off).")
    ] = 0,
    config: Annotated[
        Optional[Path],
        typer.Option("--config", "-c", help="Judge YAML for the difficulty filter.", exists=True, dir_okay=False),
    ] = None,
    temperature: Annotated[float, typer.Option(help="Sampling temperature of the filter's criteria and evaluations.")] = 0.7,
) -> None:
    """Curate preference pairs into judge-training data for verl and/or OpenRLHF."""
    from cerm_reward.data.pairs import read_pairs
    from cerm_reward.jsonl import write_jsonl
    from cerm_reward.training.cerm.outputs import openrlhf_judge_lines, verl_judge_rows, write_verl_parquet
    from cerm_reward.training.cerm.prepare import CurationOptions
    from cerm_reward.training.cerm.settings import TwoStageSettings

    if verl_output is None and openrlhf_output is None:
        raise typer.BadParameter("give --verl-output and/or --openrlhf-output")
    pairs = read_pairs(source, format.value, split=split, max_pairs_per_item=max_pairs_per_item)
    pairs = pairs[:limit] if limit is not None else pairs
    defaults = TwoStageSettings()
    options = CurationOptions(
        max_prompt_length,
        criteria_max_tokens or defaults.criteria.max_tokens,
        template or defaults.template,
        difficulty_rounds=difficulty_rounds,
    )
    kept, report = asyncio.run(_curate(pairs, options, tokenizer, model, config, temperature))
    for line in report.lines():
        console.print(line)
    if not kept:
        console.print("[red]no pair survived curation; nothing written[/red]")
        raise typer.Exit(NOTHING_WRITTEN)
    if verl_output is not None:
        write_verl_parquet(verl_judge_rows(kept, split=split), verl_output)
        console.print(f"wrote {len(kept)} pairs to {verl_output}")
    if openrlhf_output is not None:
        write_jsonl(openrlhf_judge_lines(kept), openrlhf_output)
        console.print(f"wrote {len(kept)} pairs to {openrlhf_output}")


def _judge_config(config_path: Optional[Path], model: Optional[str]) -> CermConfig:
    settings = CermConfig.from_file(config_path) if config_path else CermConfig()
    return settings.with_overrides({"engine.model": model})


async def _curate(
    pairs: list,
    options: Any,
    tokenizer_name: Optional[str],
    model: Optional[str],
    config_path: Optional[Path],
    temperature: float,
) -> Any:
    """Load the tokenizer (and the judge, when filtering) and run the curation with a progress bar."""
    from transformers import AutoTokenizer

    from cerm_reward.training.cerm.prepare import curate

    settings = _judge_config(config_path, model)
    model_path = settings.engine.model
    if tokenizer_name is None and model_path is None:
        from cerm_reward.engines.embedded import embedded_checkpoint

        tokenizer_name = str(embedded_checkpoint())
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_name or model_path)
    if not options.difficulty_rounds:
        return await curate(pairs, options, tokenizer=tokenizer)
    from cerm_reward.engines import opened_engine

    judge = settings.judge.model_copy(
        update={
            "criteria": settings.judge.criteria.model_copy(update={"temperature": temperature}),
            "evaluation": settings.judge.evaluation.model_copy(update={"temperature": temperature}),
        }
    )
    async with opened_engine(settings.engine) as engine:
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


def distill_sft(
    source: Annotated[str, typer.Argument(help="Preference pairs, as for prepare-data.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="verl multi-turn SFT parquet to write (column 'messages').")],
    format: FormatOption = PairFormatChoice("pairs"),
    config: Annotated[
        Optional[Path],
        typer.Option(
            "--config", "-c", help="Teacher judge YAML (e.g. recipes/judge/ce-rm-4b-http.yaml).", exists=True, dir_okay=False
        ),
    ] = None,
    model: Annotated[Optional[str], typer.Option(help="Teacher judge model (overrides the config).")] = None,
    limit: Annotated[Optional[int], typer.Option(help="Keep only the first N pairs read.")] = None,
    max_pairs_per_item: Annotated[Optional[int], typer.Option(help="Cap on (chosen, rejected) combinations per item.")] = None,
) -> None:
    """Distil SFT warm-start conversations from a stronger judge; keep pairs it ranks right."""
    from cerm_reward.data.pairs import read_pairs

    settings = _judge_config(config, model)
    pairs = read_pairs(source, format.value, max_pairs_per_item=max_pairs_per_item)
    pairs = pairs[:limit] if limit is not None else pairs
    rows, counts = asyncio.run(_distill(pairs, settings))
    console.print(", ".join(f"{kind} {count}" for kind, count in sorted(counts.items())))
    if not rows:
        console.print("[red]the teacher ranked no pair right; nothing written[/red]")
        raise typer.Exit(NOTHING_WRITTEN)
    import pandas as pd

    output.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).to_parquet(output, index=False)
    console.print(f"wrote {len(rows)} conversations to {output}")


async def _distill(pairs: list, settings: CermConfig) -> Any:
    from cerm_reward.engines import opened_engine
    from cerm_reward.judges.cerm.judge import CermJudge
    from cerm_reward.training.cerm.distill import distill_conversations

    async with opened_engine(settings.engine) as engine:
        columns = (TextColumn("distilling"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
        with Progress(*columns, console=console, transient=True) as progress:
            task = progress.add_task("pairs", total=len(pairs))
            return await distill_conversations(
                pairs, CermJudge(engine, settings.judge), on_pair_done=lambda: progress.advance(task)
            )


def openrlhf_agent() -> None:
    """Print the path of the AgentExecutor file for OpenRLHF's --train.agent_func_path (it needs openrlhf installed)."""
    from importlib.util import find_spec

    spec = find_spec("cerm_reward.integrations.openrlhf.judge_agent")
    print(spec.origin)
