"""Turn a prompt dataset into verl's RL parquet: one row per prompt, the chat in ``prompt``.

Input is anything ``datasets`` reads: a ``.jsonl``/``.json`` file, a ``.parquet`` file,
or a dataset name or directory (``load_dataset(name, split=...)``). The prompt is taken
from ``prompt_key`` (or the first of :data:`PROMPT_KEYS` present) and may be a string or
a chat; a chat that ends with an assistant turn (preference data) loses that turn.
Rows carry ``extra_info.prompt`` too, because verl passes a custom ``compute_score`` no
prompt and the judge needs the query.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from cerm_reward.errors import InputError

PROMPT_KEYS = ("prompt", "messages", "question", "query", "instruction", "input")


class DatasetFormatError(InputError):
    """A row the converter cannot turn into a chat prompt; the message names the row and key."""


def load_rows(source: str, split: str = "train") -> Iterator[dict[str, Any]]:
    import datasets

    suffix = Path(source).suffix.lower()
    if suffix in (".jsonl", ".json"):
        dataset = datasets.load_dataset("json", data_files=source, split="train")
    elif suffix == ".parquet":
        dataset = datasets.load_dataset("parquet", data_files=source, split="train")
    else:
        dataset = datasets.load_dataset(source, split=split)
    yield from dataset


def to_chat(value: Any, *, row: int, key: str, system_prompt: str | None) -> list[dict[str, str]]:
    if isinstance(value, str):
        if not value.strip():
            raise DatasetFormatError(f"row {row}: '{key}' is empty")
        chat = [{"role": "user", "content": value}]
    elif isinstance(value, list) and value and all(isinstance(m, dict) and "role" in m and "content" in m for m in value):
        chat = [{"role": str(m["role"]), "content": str(m["content"])} for m in value]
        while chat and chat[-1]["role"] == "assistant":
            chat.pop()
        if not chat:
            raise DatasetFormatError(f"row {row}: '{key}' holds only assistant turns")
    else:
        raise DatasetFormatError(f"row {row}: '{key}' must be a string or a list of {{role, content}} messages")
    if system_prompt and chat[0]["role"] != "system":
        chat.insert(0, {"role": "system", "content": system_prompt})
    return chat


def verl_rows(
    rows: Iterator[dict[str, Any]],
    *,
    data_source: str,
    split: str,
    prompt_key: str | None = None,
    system_prompt: str | None = None,
    limit: int | None = None,
) -> list[dict[str, Any]]:
    """verl's row layout: ``data_source``, ``prompt``, ``ability``, ``reward_model``, ``extra_info``."""
    out: list[dict[str, Any]] = []
    for index, row in enumerate(rows):
        if limit is not None and index >= limit:
            break
        key = prompt_key or next((k for k in PROMPT_KEYS if row.get(k) is not None), None)
        if key is None or row.get(key) is None:
            wanted = prompt_key or " / ".join(PROMPT_KEYS)
            raise DatasetFormatError(f"row {index}: no prompt column ({wanted}); columns are {sorted(row)}")
        chat = to_chat(row[key], row=index, key=key, system_prompt=system_prompt)
        out.append(
            {
                "data_source": data_source,
                "prompt": chat,
                "ability": "chat",
                "reward_model": {"style": "model", "ground_truth": ""},
                "extra_info": {"split": split, "index": index, "prompt": chat},
            }
        )
    if not out:
        raise DatasetFormatError("the dataset has no rows")
    return out


def write_parquet(rows: list[dict[str, Any]], path: Path) -> None:
    import pandas as pd

    path.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).to_parquet(path, index=False)
