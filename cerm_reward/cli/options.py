"""Option types, logging and the error console shared by the ``cerm`` commands.

typer needs every command to declare its own parameters; the ``Annotated`` option types live here
once so ``score``, ``serve``, ``config``, ``eval`` and ``needle`` declare the same flag the same way.
A flag whose default lives in :mod:`cerm_reward.config` defaults to ``None`` here, meaning "the
configuration's value": the CLI never writes a second copy of a default.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.logging import RichHandler

from cerm_reward.cli.choices import EngineChoice, JudgeKindChoice, OnFailureChoice

console = Console(stderr=True)
"""Progress, notes and logs: stderr, so stdout holds only what a command prints as its result."""

ConfigOption = Annotated[
    Optional[Path],
    typer.Option("--config", "-c", help="YAML file with 'engine' and 'judge' sections.", exists=True, dir_okay=False),
]
JudgeKindOption = Annotated[
    Optional[JudgeKindChoice],
    typer.Option("--judge", help="Judge type; critic_rm needs --checkpoint [default: the config's judge.kind, else cerm]."),
]
CheckpointOption = Annotated[
    Optional[Path],
    typer.Option("--checkpoint", exists=True, file_okay=False, help="--judge critic_rm: folder written by `cerm critic train`."),
]
ModelOption = Annotated[
    Optional[str], typer.Option("--model", help="Judge model: local path or hub id (default: the embedded judge).")
]
EngineOption = Annotated[
    Optional[EngineChoice], typer.Option("--engine", help="vllm (in-process) or http (OpenAI-compatible server).")
]
BaseUrlOption = Annotated[Optional[str], typer.Option("--base-url", help="Server address for --engine http.")]
CriteriaTokensOption = Annotated[Optional[int], typer.Option("--criteria-max-tokens", help="Token budget of the criteria turn.")]
EvalTokensOption = Annotated[
    Optional[int],
    typer.Option("--eval-max-tokens", help="Token budget of each evaluation (critic_rm: each critique)."),
]
SamplesOption = Annotated[
    Optional[int], typer.Option("--samples", help="Evaluations (critic_rm: critiques) per response, averaged.")
]
RepairOption = Annotated[Optional[bool], typer.Option("--repair/--no-repair", help="Constrained score-repair turn.")]
OnFailureOption = Annotated[Optional[OnFailureChoice], typer.Option("--on-failure", help="Terminal failure policy.")]
VerboseOption = Annotated[bool, typer.Option("--verbose", "-v", help="Show engine logs.")]


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
