"""``cerm verl ...``: data preparation for verl."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from cerm_reward.cli.options import console


def prepare_data(
    source: Annotated[str, typer.Argument(help="A .jsonl/.json/.parquet file, or a dataset name or directory for `datasets`.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="The verl parquet file to write.")],
    data_source: Annotated[
        Optional[str], typer.Option("--data-source", help="The data_source column (default: the input's name).")
    ] = None,
    split: Annotated[
        str, typer.Option("--split", help="Split to read from a named dataset; also recorded in extra_info.")
    ] = "train",
    prompt_key: Annotated[
        Optional[str], typer.Option("--prompt-key", help="Column holding the prompt (default: guessed).")
    ] = None,
    system_prompt: Annotated[Optional[str], typer.Option("--system-prompt", help="Prepended as a system turn.")] = None,
    limit: Annotated[Optional[int], typer.Option("--limit", help="Keep only the first N rows.")] = None,
) -> None:
    """Turn a prompt dataset into verl's RL parquet (prompt as chat, prompt copied into extra_info)."""
    from cerm_reward.integrations.verl.data import DatasetFormatError, load_rows, verl_rows, write_parquet

    try:
        rows = verl_rows(
            load_rows(source, split),
            data_source=data_source or Path(source).stem,
            split=split,
            prompt_key=prompt_key,
            system_prompt=system_prompt,
            limit=limit,
        )
    except DatasetFormatError as error:  # its rows are numbered, not named: say which input they are from
        raise DatasetFormatError(f"{source}: {error}") from None
    write_parquet(rows, output)
    console.print(f"wrote {len(rows)} prompts to {output}")
