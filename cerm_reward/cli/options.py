"""Options, logging and configuration shared by the ``cerm`` commands and their sub-apps.

typer needs every command to declare its own parameters; the option objects and the
flag-to-configuration mapping live here once so ``score``, ``serve``, ``eval`` and the
sub-apps in other modules declare the same flags the same way.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, Optional

import typer
from rich.console import Console
from rich.logging import RichHandler

from cerm_reward.config import JUDGE_CONFIGS, CermConfig

console = Console(stderr=True)

ConfigOption = typer.Option(
    None, "--config", "-c", help="YAML file with 'engine' and 'judge' sections.", exists=True, dir_okay=False
)
JudgeKindOption = typer.Option(
    None,
    "--judge",
    help="Judge type: cerm (CE-RM) or critic_rm (needs --checkpoint) [default: the config's judge.kind, else cerm].",
)
CheckpointOption = typer.Option(
    None, "--checkpoint", exists=True, file_okay=False, help="--judge critic_rm: folder written by `cerm critic train`."
)
ModelOption = typer.Option(None, "--model", help="Judge model: local path or hub id (default: the embedded judge).")
EngineOption = typer.Option(None, "--engine", help="vllm (in-process) or http (OpenAI-compatible server).")
BaseUrlOption = typer.Option(None, "--base-url", help="Server address for --engine http.")
CriteriaTokensOption = typer.Option(None, "--criteria-max-tokens", help="Token budget of the criteria turn.")
EvalTokensOption = typer.Option(None, "--eval-max-tokens", help="Token budget of each evaluation (critic_rm: each critique).")
SamplesOption = typer.Option(None, "--samples", help="Evaluations (critic_rm: critiques) per response, averaged.")
RepairOption = typer.Option(None, "--repair/--no-repair", help="Constrained score-repair turn.")
OnFailureOption = typer.Option(None, "--on-failure", help="Terminal policy: exclude, neutral or minimum.")
VerboseOption = typer.Option(False, "--verbose", "-v", help="Show engine logs.")


def configure_logging(verbose: bool) -> None:
    if not verbose:
        # vLLM's CPU start-up warnings (Triton, tcmalloc, eager mode) are noise here; -v shows them.
        os.environ.setdefault("VLLM_LOGGING_LEVEL", "ERROR")  # read by vLLM at import, which comes later
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(message)s",
        handlers=[RichHandler(console=console, show_path=False)],
        force=True,
    )
    logging.getLogger("cerm_reward").setLevel(logging.INFO)


_ENGINE_FLAGS = {"model": "engine.model", "engine": "engine.kind", "base_url": "engine.base_url"}
_JUDGE_FLAGS = {
    "cerm": {
        "criteria_max_tokens": "judge.criteria.max_tokens",
        "eval_max_tokens": "judge.evaluation.max_tokens",
        "samples": "judge.samples_per_response",
        "repair": "judge.failure.repair",
        "on_failure": "judge.failure.on_failure",
    },
    "critic_rm": {
        "checkpoint": "judge.checkpoint",
        "eval_max_tokens": "judge.critique.max_tokens",
        "samples": "judge.critiques_per_response",
    },
}
_FLAG_NAMES = {"repair": "--repair/--no-repair"}


def judge_settings(config: Optional[Path], arguments: dict[str, Any]) -> CermConfig:
    """The config file (or the defaults) with the shared engine/judge flags found in ``arguments`` applied.

    ``arguments["judge"]``, when it names a judge type, switches ``judge.kind``; each judge flag
    maps to that kind's key, and a flag the kind has no use for is refused rather than ignored.
    """
    base = CermConfig.from_file(config) if config else CermConfig()
    requested = arguments.get("judge")
    kind = requested if requested in JUDGE_CONFIGS else base.judge.kind
    flags = {**_ENGINE_FLAGS, **_JUDGE_FLAGS[kind]}
    for name in sorted({name for keys in _JUDGE_FLAGS.values() for name in keys} - set(flags)):
        if arguments.get(name) is not None:
            flag = _FLAG_NAMES.get(name, "--" + name.replace("_", "-"))
            raise ValueError(f"{flag} does not apply to the {kind} judge")
    overrides = {"judge.kind": kind, **{key: arguments[name] for name, key in flags.items() if name in arguments}}
    return base.with_overrides(overrides)


def judge_settings_or_exit(config: Optional[Path], arguments: dict[str, Any]) -> CermConfig:
    """:func:`judge_settings`, with a bad file or flag reported as one line and exit code 2."""
    try:
        return judge_settings(config, arguments)
    except (ValueError, KeyError) as error:
        console.print(f"[red]error:[/red] {error}")
        raise typer.Exit(2) from None
