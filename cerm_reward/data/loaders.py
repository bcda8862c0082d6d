"""One loader per benchmark file format, each turning rows into :class:`EvalItem` values.

Loaders read local files only (``.json`` holding a list, or ``.jsonl``; some accept a
directory of them), so an evaluation never depends on a network download; getting the
files is the user's step. They are chosen by name through :data:`LOADERS`. Every loader
checks the fields it needs and names the file and row when one is missing, because a
silently skipped row would change a benchmark's denominator.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from cerm_reward.data.items import EvalItem, content_id, ensure_unique_ids, word_count
from cerm_reward.errors import InputError
from cerm_reward.jsonl import read_jsonl
from cerm_reward.judges.queries import render_query

Loader = Callable[[Path], list[EvalItem]]


class FormatError(InputError):
    """A row does not have the fields its format needs; the message names file and row."""


# --- reading -------------------------------------------------------------------------------


def located_rows(path: str | Path) -> list[tuple[str, Any]]:
    """``(where, row)`` for each row of a ``.jsonl`` file (``where`` = ``path:line``) or a ``.json``
    file (a list, or ``{"data": [...]}``; ``where`` = ``path[index]``)."""
    path = Path(path)
    try:
        if path.suffix == ".jsonl":  # a bad line is read_jsonl's InputError, naming path:line
            return [(f"{path}:{number}", row) for number, row in read_jsonl(path)]
        text = path.read_bytes()
    except OSError as error:
        raise FormatError(f"{path}: cannot read ({error.strerror or error})") from None
    try:
        data = json.loads(text)
    except ValueError as error:  # JSONDecodeError, or bytes that are not UTF-8
        raise FormatError(f"{path}: not JSON ({error})") from None
    if isinstance(data, dict) and isinstance(data.get("data"), list):
        data = data["data"]
    if not isinstance(data, list):
        raise FormatError(f"{path}: expected a JSON list of rows (or JSON Lines in a .jsonl file)")
    return [(f"{path}[{index}]", row) for index, row in enumerate(data)]


def read_rows(path: str | Path) -> list[Any]:
    """The rows of :func:`located_rows`, without their locations."""
    return [row for _, row in located_rows(path)]


def _files(path: Path) -> list[Path]:
    """The file itself, or a directory's ``.json``/``.jsonl`` files in name order."""
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix in (".json", ".jsonl") and p.is_file())
        if not files:
            raise FormatError(f"{path}: no .json or .jsonl files")
        return files
    if not path.exists():
        raise InputError(f"{path}: no such file or directory")
    return [path]


def _need(row: Any, key: str, where: str) -> Any:
    if not isinstance(row, dict):
        raise FormatError(f"{where}: expected an object, got {type(row).__name__}")
    if key not in row:
        raise FormatError(f"{where}: missing field {key!r}")
    return row[key]


def _text(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise FormatError(f"{where}: expected a string, got {type(value).__name__}")
    return value


def _texts(value: Any, where: str) -> list[str]:
    """A string or a list of strings, as a list."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        return list(value)
    raise FormatError(f"{where}: expected a string or a non-empty list of strings")


def _prompt(value: Any, where: str) -> str:
    """A string prompt, or a chat rendered the way the judge renders chat queries."""
    try:
        return render_query(value)
    except ValueError as exc:
        raise FormatError(f"{where}: {exc}") from exc


def _chosen_rejected_item(
    *, id: str, benchmark: str, subset: str, prompt: str, chosen: list[str], rejected: list[str], meta: dict[str, Any]
) -> EvalItem:
    responses = chosen + rejected
    return EvalItem(
        id=id,
        benchmark=benchmark,
        subset=subset,
        prompt=prompt,
        responses=responses,
        chosen=list(range(len(chosen))),
        rejected=list(range(len(chosen), len(responses))),
        meta=meta,
    )


def _rows(path: Path) -> Iterable[tuple[Path, int, dict[str, Any]]]:
    for file in _files(path):
        for index, row in enumerate(read_rows(file)):
            yield file, index, row


# --- formats -------------------------------------------------------------------------------


def load_pairs(path: Path) -> list[EvalItem]:
    """Generic preference rows ``{prompt, chosen, rejected, id?, subset?}``.

    ``chosen``/``rejected`` are a string or a list of strings (several chosen or rejected
    responses are scored on every (chosen, rejected) pair). ``prompt`` may be a chat list.
    Without an ``id``, the id is a hash of the content; without a ``subset``, the file stem.
    """
    items = []
    for file, index, row in _rows(Path(path)):
        where = f"{file}[{index}]"
        prompt = _prompt(_need(row, "prompt", where), f"{where}.prompt")
        chosen = _texts(_need(row, "chosen", where), f"{where}.chosen")
        rejected = _texts(_need(row, "rejected", where), f"{where}.rejected")
        item_id = str(row["id"]) if row.get("id") is not None else content_id(prompt, chosen, rejected)
        items.append(
            _chosen_rejected_item(
                id=item_id,
                benchmark="pairs",
                subset=str(row.get("subset") or file.stem),
                prompt=prompt,
                chosen=chosen,
                rejected=rejected,
                meta={"source_file": file.name},
            )
        )
    return ensure_unique_ids(items)


def load_llmbar(path: Path) -> list[EvalItem]:
    """LLMBar (Zeng et al., ICLR 2024): ``{input, output_1, output_2, label: 1|2}`` per row.

    A file or a directory of files; subset = file stem (``Natural``, ``Adversarial_Neighbor``...),
    id = ``<stem>-<row index>``. Responses keep the file's order (``output_1`` first) and
    ``label`` names the chosen one.
    """
    items = []
    for file, index, row in _rows(Path(path)):
        where = f"{file}[{index}]"
        label = _need(row, "label", where)
        if label not in (1, 2):
            raise FormatError(f"{where}.label: expected 1 or 2, got {label!r}")
        outputs = [_text(_need(row, f"output_{k}", where), f"{where}.output_{k}") for k in (1, 2)]
        chosen = label - 1
        items.append(
            EvalItem(
                id=f"{file.stem}-{index}",
                benchmark="llmbar",
                subset=file.stem,
                prompt=_prompt(_need(row, "input", where), f"{where}.input"),
                responses=outputs,
                chosen=[chosen],
                rejected=[1 - chosen],
                meta={"label": label},
            )
        )
    return ensure_unique_ids(items)


RM_BENCH_STYLES = ("concise", "detailed_plain", "detailed_markdown")
"""RM-Bench's style order inside ``chosen`` and ``rejected`` (index 0, 1, 2)."""


def rm_bench_domain(file_stem: str) -> str:
    """The RM-Bench domain a data file holds: ``chat_filtered`` -> ``chat``; ``safety-refuse_filtered`` -> ``safety-refuse``."""
    return file_stem.removesuffix("_filtered")


def load_rm_bench(path: Path) -> list[EvalItem]:
    """RM-Bench (Liu et al., ICLR 2025): ``{id, prompt, chosen[3], rejected[3], subset, ...}``.

    Responses are ``chosen[0..2] + rejected[0..2]``; ``meta["style"]`` gives each one's
    style index (0 concise, 1 detailed plain, 2 detailed markdown) so the metric can build
    the 3x3 style matrix. The item's subset is the file's domain (``chat``, ``code``,
    ``math``, ``safety-refuse``, ``safety-response``; a row's ``domain`` field wins when
    present, as in the combined file); the row's own ``subset`` (its source set) is kept in
    ``meta["source_subset"]``. Ids repeat across domain files, so the item id is
    ``<domain>-<id>``.
    """
    items = []
    for file, index, row in _rows(Path(path)):
        where = f"{file}[{index}]"
        chosen = _texts(_need(row, "chosen", where), f"{where}.chosen")
        rejected = _texts(_need(row, "rejected", where), f"{where}.rejected")
        if len(chosen) != 3 or len(rejected) != 3:
            raise FormatError(f"{where}: RM-Bench rows have 3 chosen and 3 rejected responses")
        domain = str(row.get("domain") or rm_bench_domain(file.stem))
        source_id = _need(row, "id", where)
        meta: dict[str, Any] = {
            "style": [0, 1, 2, 0, 1, 2],
            "source_id": source_id,
            "source_subset": row.get("subset"),
        }
        for key in ("language", "task_id", "error_key"):
            if key in row:
                meta[key] = row[key]
        items.append(
            _chosen_rejected_item(
                id=f"{domain}-{source_id}",
                benchmark="rm-bench",
                subset=domain,
                prompt=_prompt(_need(row, "prompt", where), f"{where}.prompt"),
                chosen=chosen,
                rejected=rejected,
                meta=meta,
            )
        )
    return ensure_unique_ids(items)


def load_rewardbench(path: Path) -> list[EvalItem]:
    """RewardBench 1 (``allenai/reward-bench``, split ``filtered``): ``{id, prompt, chosen, rejected, subset}``.

    One pair a row; the subset names (``alpacaeval-easy``, ``llmbar-natural``...) drive the section scores.
    """
    items = []
    for file, index, row in _rows(Path(path)):
        where = f"{file}[{index}]"
        items.append(
            _chosen_rejected_item(
                id=str(_need(row, "id", where)),
                benchmark="rewardbench",
                subset=str(_need(row, "subset", where)),
                prompt=_prompt(_need(row, "prompt", where), f"{where}.prompt"),
                chosen=[_text(_need(row, "chosen", where), f"{where}.chosen")],
                rejected=[_text(_need(row, "rejected", where), f"{where}.rejected")],
                meta={},
            )
        )
    return ensure_unique_ids(items)


def is_ties_subset(subset: str) -> bool:
    """RewardBench 2's Ties subset, matched as ``scripts/run_v2.py`` does (``subset.lower() == "ties"``)."""
    return subset.lower() == "ties"


def load_rewardbench2(path: Path) -> list[EvalItem]:
    """RewardBench 2 (``allenai/reward-bench-2``): ``{id, prompt, chosen: [...], rejected: [...], subset, num_correct?}``.

    Outside Ties a row is best-of-4 (1 chosen, 3 rejected). In Ties the row's id is
    ``ref:<k>`` or ``tied:<k>`` (one or several correct answers to prompt k), parsed into
    ``meta["ties_kind"]``/``meta["ties_prompt"]`` for the Ties score. Ids repeat across
    subsets, so the item id is ``<subset>:<id>``; the source id stays in ``meta["source_id"]``.
    """
    items = []
    for file, index, row in _rows(Path(path)):
        where = f"{file}[{index}]"
        subset = str(_need(row, "subset", where))
        chosen = _texts(_need(row, "chosen", where), f"{where}.chosen")
        rejected = _texts(_need(row, "rejected", where), f"{where}.rejected")
        num_correct = row.get("num_correct", len(chosen))
        if num_correct != len(chosen):
            raise FormatError(f"{where}: num_correct={num_correct} but {len(chosen)} chosen responses")
        source_id = str(_need(row, "id", where))
        meta: dict[str, Any] = {"source_id": source_id, "num_correct": num_correct}
        if is_ties_subset(subset):
            kind, _, number = source_id.partition(":")
            if kind not in ("ref", "tied") or not number.strip().lstrip("-").isdigit():
                raise FormatError(f"{where}.id: Ties ids look like 'ref:<k>' or 'tied:<k>', got {source_id!r}")
            meta.update(ties_kind=kind, ties_prompt=int(number))
        elif len(chosen) != 1:
            raise FormatError(f"{where}: {subset} is best-of-N with one chosen response, got {len(chosen)}")
        items.append(
            _chosen_rejected_item(
                id=f"{subset}:{source_id}",
                benchmark="rewardbench2",
                subset=subset,
                prompt=_prompt(_need(row, "prompt", where), f"{where}.prompt"),
                chosen=chosen,
                rejected=rejected,
                meta=meta,
            )
        )
    return ensure_unique_ids(items)


JUDGEBENCH_CATEGORIES = (
    ("mmlu-pro", "knowledge"),
    ("livebench-reasoning", "reasoning"),
    ("livebench-math", "math"),
    ("livecodebench", "coding"),
)
"""JudgeBench ``source`` prefixes and the four categories the paper reports."""


def judgebench_category(source: str) -> str:
    for prefix, category in JUDGEBENCH_CATEGORIES:
        if source.startswith(prefix):
            return category
    return source


def load_judgebench(path: Path) -> list[EvalItem]:
    """JudgeBench (ScalerLab/JudgeBench ``data/*.jsonl``): ``{pair_id, question, response_A, response_B, label, source, ...}``.

    ``label`` is ``"A>B"`` or ``"B>A"``; responses keep the file order (A first), which a
    pairwise judge's both-orders protocol needs. Subset = category from ``source``
    (knowledge, reasoning, math, coding); ``source`` itself stays in meta.
    """
    items = []
    for file, index, row in _rows(Path(path)):
        where = f"{file}[{index}]"
        label = _need(row, "label", where)
        if label not in ("A>B", "B>A"):
            raise FormatError(f"{where}.label: expected 'A>B' or 'B>A', got {label!r}")
        source = str(row.get("source", "unknown"))
        chosen = 0 if label == "A>B" else 1
        items.append(
            EvalItem(
                id=str(_need(row, "pair_id", where)),
                benchmark="judgebench",
                subset=judgebench_category(source),
                prompt=_prompt(_need(row, "question", where), f"{where}.question"),
                responses=[
                    _text(_need(row, "response_A", where), f"{where}.response_A"),
                    _text(_need(row, "response_B", where), f"{where}.response_B"),
                ],
                chosen=[chosen],
                rejected=[1 - chosen],
                meta={"label": label, "source": source, "response_model": row.get("response_model")},
            )
        )
    return ensure_unique_ids(items)


def load_longform_rewardbench(path: Path) -> list[EvalItem]:
    """Long-form RewardBench: ``{id, subset, prompt, chosen: [1 str], rejected: [3 str] | [1 str]}``.

    ``meta["word_counts"]`` holds each response's word count for the length analyses.
    """
    items = []
    for file, index, row in _rows(Path(path)):
        where = f"{file}[{index}]"
        chosen = _texts(_need(row, "chosen", where), f"{where}.chosen")
        rejected = _texts(_need(row, "rejected", where), f"{where}.rejected")
        if len(chosen) != 1:
            raise FormatError(f"{where}: Long-form RewardBench rows have one chosen response")
        items.append(
            _chosen_rejected_item(
                id=str(_need(row, "id", where)),
                benchmark="longform-rewardbench",
                subset=str(_need(row, "subset", where)),
                prompt=_prompt(_need(row, "prompt", where), f"{where}.prompt"),
                chosen=chosen,
                rejected=rejected,
                meta={"word_counts": [word_count(r) for r in chosen + rejected]},
            )
        )
    return ensure_unique_ids(items)


def load_best_of_n(path: Path) -> list[EvalItem]:
    """Groups with known quality: ``{id?, prompt, responses: [...], quality: [...], subset?}``.

    The chosen responses are those of top quality, the rest rejected (empty when all are
    equal); ``meta["quality"]`` keeps the values for the selection metrics.
    """
    items = []
    for file, index, row in _rows(Path(path)):
        where = f"{file}[{index}]"
        prompt = _prompt(_need(row, "prompt", where), f"{where}.prompt")
        responses = _texts(_need(row, "responses", where), f"{where}.responses")
        quality = _need(row, "quality", where)
        if not isinstance(quality, list) or len(quality) != len(responses):
            raise FormatError(f"{where}.quality: expected one number per response")
        try:
            quality = [float(q) for q in quality]
        except (TypeError, ValueError) as exc:
            raise FormatError(f"{where}.quality: expected numbers") from exc
        top = max(quality)
        item_id = str(row["id"]) if row.get("id") is not None else content_id(prompt, responses)
        items.append(
            EvalItem(
                id=item_id,
                benchmark="best-of-n",
                subset=str(row.get("subset") or file.stem),
                prompt=prompt,
                responses=responses,
                chosen=[i for i, q in enumerate(quality) if q == top],
                rejected=[i for i, q in enumerate(quality) if q != top],
                meta={"quality": quality},
            )
        )
    return ensure_unique_ids(items)


def load_eval_items(path: Path) -> list[EvalItem]:
    """Items as this harness writes them (``EvalItem.to_dict`` rows, e.g. ``cerm needle build``).

    The rows carry their own benchmark, so the metric follows the items, not the format name.
    """
    items = []
    for file, index, row in _rows(path):
        try:
            items.append(EvalItem.from_dict(row))
        except (KeyError, TypeError, ValueError) as exc:
            raise FormatError(f"{file}[{index}]: not an evaluation item ({type(exc).__name__}: {exc})") from exc
    return items


def looks_like_eval_items(path: Path) -> bool:
    """Whether the first row of ``path`` has the fields of an ``EvalItem`` row (``--format`` may then be left out)."""
    try:
        rows = read_rows(_files(path)[0])
    except (OSError, ValueError):
        return False
    return bool(rows) and isinstance(rows[0], dict) and {"benchmark", "responses", "chosen", "rejected"} <= rows[0].keys()


LOADERS: dict[str, Loader] = {
    "items": load_eval_items,
    "pairs": load_pairs,
    "llmbar": load_llmbar,
    "rm-bench": load_rm_bench,
    "rewardbench": load_rewardbench,
    "rewardbench2": load_rewardbench2,
    "judgebench": load_judgebench,
    "longform-rewardbench": load_longform_rewardbench,
    "best-of-n": load_best_of_n,
}
"""Format name -> loader. The names are also the ``benchmark`` of the items and the metric keys
(except ``items``, whose rows name their benchmark)."""


def load_items(format: str, path: str | Path) -> list[EvalItem]:
    """Load a benchmark file (or directory) with the loader registered under ``format``."""
    try:
        loader = LOADERS[format]
    except KeyError:
        raise ValueError(f"unknown format {format!r}; expected one of {sorted(LOADERS)}") from None
    return loader(Path(path))
