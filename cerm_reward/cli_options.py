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

from cerm_reward.config import CermConfig

console = Console(stderr=True)

ConfigOption = typer.Option(
    None, "--config", "-c", help="YAML file with 'engine' and 'judge' sections.", exists=True, dir_okay=False
)
ModelOption = typer.Option(None, "--model", help="Judge model: local path or hub id (default: the embedded judge).")
EngineOption = typer.Option(None, "--engine", help="vllm (in-process) or http (OpenAI-compatible server).")
BaseUrlOption = typer.Option(None, "--base-url", help="Server address for --engine http.")
CriteriaTokensOption = typer.Option(None, "--criteria-max-tokens", help="Token budget of the criteria turn.")
EvalTokensOption = typer.Option(None, "--eval-max-tokens", help="Token budget of each evaluation.")
SamplesOption = typer.Option(None, "--samples", help="Evaluations per response (test-time scaling).")
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


def load_config(path: Optional[Path], overrides: dict[str, Any]) -> CermConfig:
    base = CermConfig.from_file(path) if path else CermConfig()
    return base.with_overrides(overrides)


_FLAG_KEYS = {
    "model": "engine.model",
    "engine": "engine.kind",
    "base_url": "engine.base_url",
    "criteria_max_tokens": "judge.criteria.max_tokens",
    "eval_max_tokens": "judge.evaluation.max_tokens",
    "samples": "judge.samples_per_response",
    "repair": "judge.failure.repair",
    "on_failure": "judge.failure.on_failure",
}


def judge_settings(config: Optional[Path], arguments: dict[str, Any]) -> CermConfig:
    """The config file (or the defaults) with the shared engine/judge flags found in ``arguments`` applied."""
    return load_config(config, {key: arguments[name] for name, key in _FLAG_KEYS.items() if name in arguments})
