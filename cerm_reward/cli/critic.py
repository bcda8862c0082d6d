"""``cerm critic``: build Critic-RM training data and train it.

Scoring with a trained checkpoint is the ``critic_rm`` judge kind, everywhere judges run:
``cerm score --judge critic_rm --checkpoint DIR``, ``cerm serve``, ``cerm eval``, ``reward=critic_rm``.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from cerm_reward.cli.choices import BenchmarkFormatChoice, RefinementChoice, ScheduleChoice, value_of
from cerm_reward.cli.options import console
from cerm_reward.config import CermConfig, EngineConfig, validated
from cerm_reward.errors import ConfigError
from cerm_reward.jsonl import write_jsonl


def _progress(label: str) -> Progress:
    columns = [TextColumn(label), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), TimeRemainingColumn()]
    return Progress(*columns, console=console)


def _table(title: str, rows: list[tuple[str, Any]]) -> None:
    table = Table(title=title, show_header=False)
    for name, value in rows:
        table.add_row(name, str(value))
    Console().print(table)


def _counts(counter: dict[str, int]) -> str:
    return ", ".join(f"{k}={v}" for k, v in sorted(counter.items())) or "none"


def _yaml_mapping(path: Path) -> dict[str, Any]:
    """A settings file's top-level mapping; an unreadable file or another shape is a :class:`ConfigError`."""
    import yaml

    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as error:
        raise ConfigError(f"{path}: cannot read the settings: {error}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of settings")
    return data


def build_data(
    data: Annotated[Path, typer.Argument(help="Preference data: a file or folder in --format.", exists=True)],
    output: Annotated[Path, typer.Option("--output", "-o", help="Training records JSONL (overwritten).")],
    data_format: Annotated[
        BenchmarkFormatChoice, typer.Option("--format", help="Loader of cerm eval that reads --data.")
    ] = BenchmarkFormatChoice("pairs"),
    limit: Annotated[Optional[int], typer.Option(help="Use the first N pairs.")] = None,
    config: Annotated[
        Optional[Path],
        typer.Option("--config", "-c", help="YAML with an 'engine' section (the critic's engine).", exists=True, dir_okay=False),
    ] = None,
    model: Annotated[Optional[str], typer.Option("--model", help="Critic model (default: the engine config's).")] = None,
    build_config: Annotated[
        Optional[Path], typer.Option("--build-config", exists=True, dir_okay=False, help="BuildConfig YAML.")
    ] = None,
    critiques: Annotated[Optional[int], typer.Option("--critiques", "-k", help="Critiques per response.")] = None,
    refinement: Annotated[Optional[RefinementChoice], typer.Option(help="Meta-judge strategy.")] = None,
    critique_max_tokens: Annotated[Optional[int], typer.Option(help="Token budget of a critique.")] = None,
    repair: Annotated[Optional[bool], typer.Option("--repair/--no-repair", help="Constrained score-repair turn.")] = None,
) -> None:
    """Sample k critiques per response, filter pairs by consistency, refine with a meta-judge."""
    from cerm_reward.data.pairs import read_pairs
    from cerm_reward.training.critic_rm.config import BuildConfig

    settings = _yaml_mapping(build_config) if build_config else {}
    updates = {"critiques_per_response": critiques, "refinement": value_of(refinement), "repair": repair}
    settings.update({k: v for k, v in updates.items() if v is not None})
    if critique_max_tokens is not None:
        default = BuildConfig().critique.model_dump()  # a partial section keeps the build defaults, not SamplingConfig's
        settings["critique"] = {**default, **settings.get("critique", {}), "max_tokens": critique_max_tokens}
    build = validated(BuildConfig, settings, str(build_config or "build flags"))
    engine = (CermConfig.from_file(config) if config else CermConfig()).engine
    if model is not None:
        engine = validated(EngineConfig, {**engine.model_dump(), "model": model}, "--model")
    pairs = read_pairs(data, data_format.value)[:limit]
    stats = asyncio.run(_build(engine, build, pairs, output))
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
    from cerm_reward.engines import opened_engine
    from cerm_reward.training.critic_rm.builder import CritiqueDataBuilder

    async with opened_engine(engine_config) as engine:
        builder = CritiqueDataBuilder(engine, build)
        with _progress("building") as progress:
            task = progress.add_task("build", total=len(pairs))
            records = await builder.build(pairs, on_record=lambda _: progress.advance(task))
    write_jsonl(records, output)
    return builder.stats.to_dict()


def train(
    records: Annotated[Path, typer.Argument(help="Records from `cerm critic build-data`.", exists=True, dir_okay=False)],
    output: Annotated[Path, typer.Option("--output", "-o", help="Checkpoint folder (model + reward_head/).")],
    base_model: Annotated[Optional[str], typer.Option(help="Causal LM to start from (default: the embedded model).")] = None,
    config: Annotated[
        Optional[Path], typer.Option("--config", "-c", exists=True, dir_okay=False, help="TrainConfig YAML.")
    ] = None,
    max_steps: Annotated[Optional[int], typer.Option(help="Optimizer steps (overrides epochs).")] = None,
    lm_weight_schedule: Annotated[
        Optional[ScheduleChoice], typer.Option(help="Shape of the critique-loss weight over training.")
    ] = None,
) -> None:
    """Joint training (Bradley-Terry + scheduled critique NLL); runs under accelerate launch / torchrun."""
    from cerm_reward.training.critic_rm.builder import read_build_records
    from cerm_reward.training.critic_rm.config import TrainConfig
    from cerm_reward.training.critic_rm.trainer import build_trainer

    settings = _yaml_mapping(config) if config else {}
    if max_steps is not None:
        settings["max_steps"] = max_steps
    if lm_weight_schedule is not None:
        settings["lm_weight"] = {**settings.get("lm_weight", {}), "kind": lm_weight_schedule.value}
    train_config = validated(TrainConfig, settings, str(config or "train flags"))
    if base_model is None:
        from cerm_reward.engines.embedded import embedded_checkpoint

        base_model = str(embedded_checkpoint())
    trainer = build_trainer(read_build_records(records), base_model, output, train_config)
    trainer.train()
    trainer.save_model(str(output))
    if trainer.is_world_process_zero():
        logs = [entry for entry in trainer.state.log_history if "bt_loss" in entry]
        write_jsonl(logs, output / "train_log.jsonl")
        _table(
            "cerm critic train",
            [
                ("steps", trainer.state.global_step),
                ("loss first / last", f"{logs[0]['loss']:.4f} / {logs[-1]['loss']:.4f}" if logs else "-"),
                ("pair accuracy (last log)", logs[-1]["pair_accuracy"] if logs else "-"),
                ("checkpoint", output),
            ],
        )
