"""Preference pairs for judge training, read from the formats users hold them in.

A judge-training example is one (query, chosen, rejected) triple, for CE-RM's judge training and
Critic-RM's data builder alike. The benchmark layouts the evaluation harness already reads
(``pairs`` jsonl/json, LLMBar, RM-Bench, ...) come through its loaders, so a file that
``cerm eval`` accepts is accepted here with the same checks. Tables the loaders do not read (a
``.parquet`` file, a Hugging Face dataset name or folder) go through ``datasets``; there
``chosen``/``rejected`` may also be whole chats ending with the assistant answer (the common HF
preference layout), and the query is then the chat before that answer.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cerm_reward.data.items import EvalItem, content_id
from cerm_reward.data.loaders import LOADERS, load_items
from cerm_reward.errors import InputError
from cerm_reward.judges.queries import render_query


@dataclass(frozen=True)
class PreferencePair:
    """One training pair, for every trainer: CE-RM's judge training and Critic-RM's data builder.

    ``id`` comes from :func:`pair_id`: the same pair gets the same id whichever file or layout
    it was read from, and a rerun over the same data finds the same ids.
    """

    id: str
    query: str
    """The rendered query (:func:`~cerm_reward.judges.queries.render_query`), as the judges read it."""
    chosen: str
    rejected: str
    source: str
    """The benchmark or file the pair came from."""
    subset: str


def pair_id(source_id: str | None, query: str, chosen: str, rejected: str) -> str:
    """The source's id when it names this one pair, else a hash of the pair's content.

    An item with several chosen or rejected responses has no id of its own per pair, so its
    pairs are hashed too; a position-based suffix would change meaning when the data is
    reordered or capped.
    """
    return source_id if source_id is not None else content_id(query, chosen, rejected)


class PairFormatError(InputError):
    """A row that cannot become a pair; the message names the row and the field."""


def pairs_from_items(items: Iterable[EvalItem], max_pairs_per_item: int | None = None) -> Iterator[PreferencePair]:
    """Every (chosen, rejected) combination of each item, chosen-major, at most ``max_pairs_per_item``.

    RM-Bench items hold 3 chosen x 3 rejected responses (9 pairs); LLMBar items hold one pair.
    """
    for item in items:
        combos = [(c, r) for c in item.chosen for r in item.rejected]
        for c, r in combos[:max_pairs_per_item] if max_pairs_per_item else combos:
            chosen, rejected = item.responses[c], item.responses[r]
            own_id = item.id if len(combos) == 1 else None
            yield PreferencePair(
                pair_id(own_id, item.prompt, chosen, rejected), item.prompt, chosen, rejected, item.benchmark, item.subset
            )


def _answer_and_context(value: Any, where: str) -> tuple[str, list[dict[str, str]] | None]:
    """A response given as text, or as a chat whose last message is the assistant's answer."""
    if isinstance(value, str):
        return value, None
    if isinstance(value, list) and value and all(isinstance(m, dict) and {"role", "content"} <= m.keys() for m in value):
        if value[-1]["role"] != "assistant":
            raise PairFormatError(f"{where}: a chat response must end with an assistant message")
        return str(value[-1]["content"]), [{"role": str(m["role"]), "content": str(m["content"])} for m in value[:-1]]
    raise PairFormatError(f"{where}: expected a string or a chat ending with the assistant answer")


def pair_from_row(row: dict[str, Any], *, index: int, source: str) -> PreferencePair:
    """``{prompt?, chosen, rejected, id?, subset?}`` with text or chat responses."""
    where = f"{source}[{index}]"
    for key in ("chosen", "rejected"):
        if row.get(key) is None:
            raise PairFormatError(f"{where}: missing field {key!r}")
    chosen, chosen_context = _answer_and_context(row["chosen"], f"{where}.chosen")
    rejected, _ = _answer_and_context(row["rejected"], f"{where}.rejected")
    prompt = row.get("prompt")
    if prompt is None:
        prompt = chosen_context
    if not prompt:
        raise PairFormatError(f"{where}: no 'prompt' and no chat before the chosen answer")
    try:
        query = render_query(prompt)
    except ValueError as error:
        raise PairFormatError(f"{where}.prompt: {error}") from error
    own_id = str(row["id"]) if row.get("id") is not None else None
    return PreferencePair(
        pair_id(own_id, query, chosen, rejected), query, chosen, rejected, source, str(row.get("subset") or source)
    )


def _table_rows(source: str, split: str) -> Iterator[dict[str, Any]]:
    import datasets

    try:
        if Path(source).suffix.lower() == ".parquet":
            yield from datasets.load_dataset("parquet", data_files=source, split="train")
        else:
            yield from datasets.load_dataset(source, split=split)
    except FileNotFoundError as error:  # datasets' DatasetNotFoundError too: the user named no table it can find
        raise PairFormatError(f"{source}: {error}") from None


TABLE_FORMAT = "table"
"""Format name of a parquet file or ``datasets`` dataset of pair rows."""


def input_formats() -> list[str]:
    return [*sorted(LOADERS), TABLE_FORMAT]


def read_pairs(
    source: str | Path, format: str = "pairs", *, split: str = "train", max_pairs_per_item: int | None = None
) -> list[PreferencePair]:
    """Pairs from a file or folder in one of the evaluation formats, or from a table (``format='table'``)."""
    if format == TABLE_FORMAT:
        name = Path(str(source)).stem
        return [pair_from_row(row, index=i, source=name) for i, row in enumerate(_table_rows(str(source), split))]
    return list(pairs_from_items(load_items(format, source), max_pairs_per_item))
