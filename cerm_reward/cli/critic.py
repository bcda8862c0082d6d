"""``cerm critic``: build Critic-RM training data and train it.

Scoring with a trained checkpoint is the ``critic_rm`` judge kind, everywhere judges run:
``cerm score --judge critic_rm --checkpoint DIR``, ``cerm serve``, ``cerm eval``, ``reward=critic_rm``.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any, Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from cerm_reward.config import CermConfig, EngineConfig

critic_app = typer.Typer(
    help="Critic-RM: critique-then-scalar reward model (data, training); score with `cerm score --judge critic_rm`.",
    no_args_is_help=True,
)
console = Console(stderr=True)

EngineConfigOption = typer.Option(
    None, "--config", "-c", help="YAML with an 'engine' section (the critic's engine).", exists=True, dir_okay=False
)


def _progress(label: str) -> Progress:
    columns = [TextColumn(label), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), TimeRemainingColumn()]
    return Progress(*columns, console=console)


def _engine_config(config: Optional[Path], overrides: dict[str, Any]) -> EngineConfig:
    engine = (CermConfig.from_file(config) if config else CermConfig()).engine
    return engine.model_copy(update={k: v for k, v in overrides.items() if v is not None})


def _table(title: str, rows: list[tuple[str, Any]]) -> None:
    table = Table(title=title, show_header=False)
    for name, value in rows:
        table.add_row(name, str(value))
    Console().print(table)


def _counts(counter: dict[str, int]) -> str:
    return ", ".join(f"{k}={v}" for k, v in sorted(counter.items())) or "none"


@critic_app.command("build-data")
def build_data(
    data: Path = typer.Argument(..., help="Preference data: a file or folder in --format.", exists=True),
    output: Path = typer.Option(..., "--output", "-o", help="Training records JSONL (overwritten)."),
    data_format: str = typer.Option("pairs", "--format", help="Loader of cerm eval: pairs, llmbar, rm-bench, ..."),
    limit: Optional[int] = typer.Option(None, help="Use the first N pairs."),
    config: Optional[Path] = EngineConfigOption,
    model: Optional[str] = typer.Option(None, "--model", help="Critic model (default: the engine config's)."),
    build_config: Optional[Path] = typer.Option(None, "--build-config", exists=True, dir_okay=False, help="BuildConfig YAML."),
    critiques: Optional[int] = typer.Option(None, "--critiques", "-k", help="Critiques per response."),
    refinement: Optional[str] = typer.Option(None, help="rank, summarise or none."),
    critique_max_tokens: Optional[int] = typer.Option(None, help="Token budget of a critique."),
    repair: Optional[bool] = typer.Option(None, "--repair/--no-repair", help="Constrained score-repair turn."),
) -> None:
    """Sample k critiques per response, filter pairs by consistency, refine with a meta-judge."""
    import yaml

    from cerm_reward.data.loaders import load_items
    from cerm_reward.training.critic_rm.builder import pairs_from_items
    from cerm_reward.training.critic_rm.config import BuildConfig

    settings = yaml.safe_load(build_config.read_text()) if build_config else {}
    updates = {"critiques_per_response": critiques, "refinement": refinement, "repair": repair}
    settings.update({k: v for k, v in updates.items() if v is not None})
    if critique_max_tokens is not None:
        settings["critique"] = {
            **BuildConfig().critique.model_dump(),
            **settings.get("critique", {}),
            "max_tokens": critique_max_tokens,
        }
    build = BuildConfig.model_validate(settings)
    pairs = pairs_from_items(load_items(data_format, data))[:limit]
    stats = asyncio.run(_build(_engine_config(config, {"model": model}), build, pairs, output))
    _table(
        "cerm critic build-data",
        [
            ("pairs", stats["pairs"]),
            ("kept by the consistency filter", stats["kept"]),
            ("dropped, by reason", _counts(stats["drop_reasons"])),
            ("critiques without a score, by kind", _counts(stats["sample_failures"])),
            ("repairs succeeded / attempted", f"{stats['repairs_succeeded']} / {stats['repairs_attempted']}"),
            ("meta-judge calls / unusable answers", f"{stats['meta_calls']} / {_counts(stats['meta_failures'])}"),
            ("output", output),
        ],
    )


async def _build(engine_config: EngineConfig, build: Any, pairs: list, output: Path) -> dict[str, Any]:
    from cerm_reward.engines import open_engine
    from cerm_reward.training.critic_rm.builder import CritiqueDataBuilder, write_records

    engine = await open_engine(engine_config)
    try:
        builder = CritiqueDataBuilder(engine, build)
        with _progress("building") as progress:
            task = progress.add_task("build", total=len(pairs))
            records = await builder.build(pairs, on_record=lambda _: progress.advance(task))
    finally:
        await engine.aclose()
    write_records(records, output)
    return builder.stats.to_dict()


@critic_app.command("train")
def train(
    records: Path = typer.Argument(..., help="Records from `cerm critic build-data`.", exists=True, dir_okay=False),
    output: Path = typer.Option(..., "--output", "-o", help="Checkpoint folder (model + reward_head/)."),
    base_model: Optional[str] = typer.Option(None, help="Causal LM to start from (default: the embedded model)."),
    config: Optional[Path] = typer.Option(None, "--config", "-c", exists=True, dir_okay=False, help="TrainConfig YAML."),
    max_steps: Optional[int] = typer.Option(None, help="Optimizer steps (overrides epochs)."),
    lm_weight_schedule: Optional[str] = typer.Option(None, help="constant, linear or cosine."),
) -> None:
    """Joint training (Bradley-Terry + scheduled critique NLL); runs under accelerate launch / torchrun."""
    from cerm_reward.training.critic_rm.builder import read_records
    from cerm_reward.training.critic_rm.config import TrainConfig
    from cerm_reward.training.critic_rm.trainer import build_trainer

    settings = TrainConfig.from_file(config) if config else TrainConfig()
    updates: dict[str, Any] = {}
    if max_steps is not None:
        updates["max_steps"] = max_steps
    if lm_weight_schedule is not None:
        updates["lm_weight"] = settings.lm_weight.model_copy(update={"kind": lm_weight_schedule})
    settings = TrainConfig.model_validate({**settings.model_dump(), **updates})
    if base_model is None:
        from cerm_reward.engines.embedded import embedded_checkpoint

        base_model = str(embedded_checkpoint())
    trainer = build_trainer(read_records(records), base_model, output, settings)
    trainer.train()
    trainer.save_model(str(output))
    if trainer.is_world_process_zero():
        logs = [entry for entry in trainer.state.log_history if "bt_loss" in entry]
        (output / "train_log.jsonl").write_text("".join(json.dumps(entry) + "\n" for entry in logs))
        _table(
            "cerm critic train",
            [
                ("steps", trainer.state.global_step),
                ("loss first / last", f"{logs[0]['loss']:.4f} / {logs[-1]['loss']:.4f}" if logs else "-"),
                ("pair accuracy (last log)", logs[-1]["pair_accuracy"] if logs else "-"),
                ("checkpoint", output),
            ],
        )
