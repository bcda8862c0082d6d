"""``cerm openrlhf ...``: the reward-function file OpenRLHF is pointed at."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from cerm_reward.errors import ConfigError


def reward_func(
    output: Annotated[
        Optional[Path], typer.Option("--output", "-o", help="Write a copy here (default: print the installed path).")
    ] = None,
    url: Annotated[
        Optional[str], typer.Option(help="Server address written into the copy as its default CERM_REWARD_URL.")
    ] = None,
) -> None:
    """The reward_func file for OpenRLHF's --reward.remote_url (it forwards to `cerm serve`)."""
    from cerm_reward.integrations.openrlhf import reward_func as module

    source = Path(module.__file__)
    if output is None:
        if url:
            raise ConfigError("--url needs --output (the installed file is not edited)")
        print(source)
        return
    text = source.read_text(encoding="utf-8")
    if url:
        text = text.replace(f'"{module.DEFAULT_URL}"', repr(url.rstrip("/")).replace("'", '"'), 1)
    output.write_text(text, encoding="utf-8")
    print(output)
