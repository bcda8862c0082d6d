"""``cerm prompts``, ``cerm config`` and ``cerm embedded``: show what the judge would use, run nothing."""

from __future__ import annotations

import sys
from typing import Annotated, Optional

import typer

from cerm_reward.cli.choices import value_of
from cerm_reward.cli.flags import JudgeFlags, judge_settings
from cerm_reward.cli.options import CheckpointOption, ConfigOption, JudgeKindOption


def prompts(
    query: Annotated[str, typer.Option(help="The user query.")],
    response: Annotated[Optional[str], typer.Option(help="A response: also print its evaluation turn.")] = None,
    criteria: Annotated[
        str, typer.Option(help="Criteria text to replay in the evaluation turn.")
    ] = "<criteria written by the judge>",
    template: Annotated[
        Optional[str], typer.Option(help="Template version or YAML file [default: the configuration's judge.template].")
    ] = None,
) -> None:
    """Print the rendered judge prompts exactly as the engine receives them (before the chat template)."""
    from cerm_reward.config import CermJudgeConfig
    from cerm_reward.judges.templates import load_template

    loaded = load_template(template or CermJudgeConfig().template)
    messages = loaded.evaluation_messages(query, criteria, response) if response is not None else loaded.criteria_messages(query)
    for message in messages:
        sys.stdout.write(f"===== {message['role']} =====\n{message['content']}")
        if not message["content"].endswith("\n"):
            sys.stdout.write("\n")


def show_config(config: ConfigOption = None, judge: JudgeKindOption = None, checkpoint: CheckpointOption = None) -> None:
    """Print the effective configuration (all defaults included) as YAML."""
    settings = judge_settings(config, JudgeFlags(judge=value_of(judge), checkpoint=checkpoint))
    sys.stdout.write(settings.to_yaml())
    sys.stdout.write(f"# {settings.judge.describe_failure_policy()}\n")


def embedded() -> None:
    """Convert the embedded default judge (once) and print its checkpoint folder."""
    from cerm_reward.engines.embedded import embedded_checkpoint

    print(embedded_checkpoint())
