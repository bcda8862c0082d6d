"""Another model's published per-item scores as a scorer, read by item id and position.

Benchmarks repeat texts (RM-Bench repeats a response inside 63 of its 798 items and shares one
between two items), so a score belongs to an item and a position, never to a text: a lookup by
(prompt, response) would hand one position's score to another. Every value that is not a
finite number becomes a counted ``invalid_score`` failure; every malformed row is an
:class:`~cerm_reward.errors.InputError` naming the file, the line and the field.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from cerm_reward.data.items import INVALID_SCORE, EvalItem, ResponseScore
from cerm_reward.data.loaders import located_rows
from cerm_reward.errors import InputError
from cerm_reward.evaluation.matching import MatchAccount
from cerm_reward.evaluation.scoring_loop import ScoreScope

MISSING_SCORE = "missing_score"
"""Failure kind of a response the precomputed file has no score for."""


def _number(value: Any, failure: Any, where: str) -> ResponseScore:
    """One score slot: a finite number, ``null`` (no score), or anything else (an invalid score)."""
    if isinstance(value, list) and len(value) == 1:  # some RM outputs wrap a scalar
        value = value[0]
    if value is None:
        return ResponseScore(None, failure or MISSING_SCORE, f"{where}: null score")
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return ResponseScore(float(value), failure)
    text = repr(value) if len(repr(value)) <= 60 else repr(value)[:57] + "..."
    return ResponseScore(None, INVALID_SCORE, f"{where}: {text} is not a finite number")


def _list(row: dict[str, Any], key: str, size: int, where: str, item_id: str) -> list[Any]:
    value = row[key]
    if not isinstance(value, list):
        raise InputError(f"{where}.{key}: expected a list of {size} scores, got {type(value).__name__}")
    if len(value) != size:
        raise InputError(f"{where}.{key}: {len(value)} scores for the {size} responses of item {item_id!r}")
    return value


def _failures(row: dict[str, Any], where: str) -> list[Any]:
    failures = row.get("failures")
    if failures is None:
        return []
    if not isinstance(failures, list) or not all(f is None or isinstance(f, str) for f in failures):
        raise InputError(f"{where}.failures: expected a list of failure kinds (strings or null)")
    return failures


def parse_row(row: dict[str, Any], item: EvalItem, where: str) -> list[ResponseScore]:
    """The scores of one row, by position of ``item.responses``.

    ``{"scores": [...], "failures"?: [...]}`` is aligned with the responses;
    ``{"chosen_scores": [...], "rejected_scores": [...]}`` with the chosen and rejected lists.
    """
    results: list[ResponseScore | None] = [None] * len(item.responses)
    if "scores" in row:
        values = _list(row, "scores", len(item.responses), where, item.id)
        failures = _failures(row, where)
        for i, value in enumerate(values):
            results[i] = _number(value, failures[i] if i < len(failures) else None, f"{where}.scores[{i}]")
    elif "chosen_scores" in row and "rejected_scores" in row:
        for key, positions in (("chosen_scores", item.chosen), ("rejected_scores", item.rejected)):
            values = _list(row, key, len(positions), where, item.id)
            for k, (position, value) in enumerate(zip(positions, values, strict=True)):
                results[position] = _number(value, None, f"{where}.{key}[{k}]")
    else:
        raise InputError(f"{where}: a row needs 'scores' or 'chosen_scores' + 'rejected_scores'")
    return [r if r is not None else ResponseScore(None, MISSING_SCORE, f"{where}: no score for this position") for r in results]


class PrecomputedScorer:
    """A scorer over a JSONL/JSON file of per-item scores, keyed by (item id, position).

    ``items`` are all the items of the data (not only a run's selection), so a row for an
    unselected item is not mistaken for an unknown id. A repeated id with the same scores is
    accepted (counted as a duplicate row); with other scores it is an error naming both lines.
    :meth:`match` accounts for a selection. The identity includes a hash of the file's bytes.
    """

    scope = ScoreScope.ITEM

    def __init__(self, path: str | Path, items: Sequence[EvalItem], *, name: str | None = None) -> None:
        self.path = Path(path)
        rows = located_rows(self.path)
        digest = hashlib.sha256(self.path.read_bytes()).hexdigest()[:12]
        self.identity = f"precomputed:{name or self.path.name}:{digest}"
        self.rows = len(rows)
        self.duplicate_rows = 0
        self.unknown_ids: list[str] = []
        self._scores: dict[str, list[ResponseScore]] = {}
        first_line: dict[str, str] = {}
        by_id = {item.id: item for item in items}
        for where, row in rows:
            if not isinstance(row, dict):
                raise InputError(f"{where}: expected an object with 'id' and 'scores', got {type(row).__name__}")
            if row.get("id") is None:
                raise InputError(f"{where}: missing field 'id'")
            item_id = str(row["id"])
            item = by_id.get(item_id)
            if item is None:
                self.unknown_ids.append(item_id)
                continue
            scores = parse_row(row, item, where)
            if item_id in self._scores:
                if _comparable(scores) != _comparable(self._scores[item_id]):
                    raise InputError(f"{where}: id {item_id!r} repeats {first_line[item_id]} with other scores")
                self.duplicate_rows += 1
                continue
            self._scores[item_id] = scores
            first_line[item_id] = where

    def match(self, selected: Sequence[EvalItem]) -> MatchAccount:
        """How this file covers the ``selected`` items."""
        missing = tuple(item.id for item in selected if item.id not in self._scores)
        return MatchAccount(
            source=str(self.path),
            items=len(selected),
            matched=len(selected) - len(missing),
            missing_ids=missing,
            unknown_ids=tuple(self.unknown_ids),
            duplicate_rows=self.duplicate_rows,
            rows=self.rows,
        )

    async def score(self, item: EvalItem, positions: Sequence[int]) -> list[ResponseScore]:
        scores = self._scores.get(item.id)
        if scores is None:
            return [ResponseScore(None, MISSING_SCORE, f"no row for {item.id!r} in {self.path}") for _ in positions]
        return [scores[i] for i in positions]


def _comparable(scores: Sequence[ResponseScore]) -> list[tuple[float | None, str | None]]:
    """What two rows of one id must agree on: each position's score and failure kind (not the line in the detail)."""
    return [(s.score, s.failure) for s in scores]
