"""Scoring a benchmark's items with any scorer, concurrently and resumably.

The runner knows nothing of benchmarks or engines: a :class:`Scorer` turns (prompt,
responses) into one :class:`ResponseScore` per response. It skips items the store
already holds, takes what it can from the cache, asks the scorer for the rest, and
writes each item to the store the moment it is finished.
:class:`PrecomputedScorer` is a scorer over a file of published per-item scores, so any
reward model's outputs go through the same metrics as our judge's.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from cerm_reward.data.items import EvalItem, ResponseScore, ScoredItem
from cerm_reward.data.loaders import read_rows
from cerm_reward.errors import InputError
from cerm_reward.evaluation.store import ResultStore, ScoreCache
from cerm_reward.results import FailureKind


@runtime_checkable
class Scorer(Protocol):
    """What the runner needs from a judge or reward model.

    ``identity`` names the judge *and* everything that changes its scores (model, template
    version, decoding settings): it keys the score cache and is recorded with every stored
    item, so two configurations never share results.
    """

    identity: str

    async def score(self, prompt: str, responses: list[str]) -> list[ResponseScore]:
        """One result per response, in order. A failure on one response is a result, not an exception."""
        ...


@dataclass(frozen=True)
class ProgressEvent:
    """Sent to the progress callback after every finished item (and once at the start)."""

    done: int
    """Items finished, including those already in the store."""
    total: int
    skipped: int
    """Items found finished in the store at the start."""
    item_id: str | None
    failures: int
    """Items finished in this run with at least one failed response."""
    cache_hits: int


ProgressCallback = Callable[[ProgressEvent], None]


@dataclass
class RunStats:
    """What one :func:`evaluate` call did."""

    total: int = 0
    skipped: int = 0
    scored: int = 0
    failed_items: int = 0
    scorer_calls: int = 0
    cache_hits: int = 0
    cache_misses: int = 0
    failures: dict[str, int] = field(default_factory=dict)


async def _score_item(
    item: EvalItem, scorer: Scorer, cache: ScoreCache | None, stats: RunStats, *, raise_errors: bool
) -> list[ResponseScore]:
    results: list[ResponseScore | None] = [None] * len(item.responses)
    if cache is not None:
        for index, response in enumerate(item.responses):
            hit = cache.get(scorer.identity, item.prompt, response)
            if hit is not None:
                results[index] = hit
                stats.cache_hits += 1
            else:
                stats.cache_misses += 1
    missing = [i for i, r in enumerate(results) if r is None]
    if missing:
        stats.scorer_calls += 1
        try:
            fresh = await scorer.score(item.prompt, [item.responses[i] for i in missing])
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if raise_errors:
                raise
            detail = f"{type(exc).__name__}: {exc}"
            fresh = [ResponseScore(None, FailureKind.ENGINE_ERROR.value, detail) for _ in missing]
        if len(fresh) != len(missing):
            raise RuntimeError(f"{scorer.identity}: {len(fresh)} results for {len(missing)} responses of {item.id}")
        for index, result in zip(missing, fresh, strict=True):
            results[index] = result
            if cache is not None:
                cache.put(scorer.identity, item.prompt, item.responses[index], result)
    return [r for r in results if r is not None]


async def evaluate(
    items: Sequence[EvalItem],
    scorer: Scorer,
    store: ResultStore,
    *,
    concurrency: int = 4,
    cache: ScoreCache | None = None,
    progress: ProgressCallback | None = None,
    raise_errors: bool = False,
) -> tuple[list[ScoredItem], RunStats]:
    """Score every item not yet in ``store``, at most ``concurrency`` at a time.

    Returns all items (stored before or now) with their scores, in the order given, and
    what this call did. An exception from the scorer becomes an ``engine_error`` failure on
    the item's unscored responses (the item is stored as finished, so its failure is
    counted, not silently retried) unless ``raise_errors`` is set, which stops the run;
    finished items stay stored either way. A store holding results of another judge
    identity is refused: one store, one judge.
    """
    if concurrency < 1:
        raise ValueError("concurrency must be >= 1")
    ids = [item.id for item in items]
    if len(set(ids)) != len(ids):
        raise InputError("item ids must be unique (see items.ensure_unique_ids)")
    for record in store.records():
        if record.get("judge") != scorer.identity:
            raise InputError(
                f"{store.path} holds results of judge {record.get('judge')!r}, not {scorer.identity!r}; use another store"
            )
    stats = RunStats(total=len(items))
    todo = [item for item in items if item.id not in store]
    stats.skipped = len(items) - len(todo)
    done = stats.skipped
    if progress is not None:
        progress(ProgressEvent(done, len(items), stats.skipped, None, 0, 0))
    semaphore = asyncio.Semaphore(concurrency)
    stopping = False  # set by the first item that raises: no further item starts

    async def run_one(item: EvalItem) -> None:
        nonlocal done, stopping
        async with semaphore:
            if stopping:
                return
            try:
                scores = await _score_item(item, scorer, cache, stats, raise_errors=raise_errors)
            except BaseException:
                stopping = True
                raise
        store.append(item, scores, judge=scorer.identity)
        stats.scored += 1
        kinds = {s.failure for s in scores if s.failure is not None}
        if kinds:
            stats.failed_items += 1
            for kind in kinds:
                stats.failures[kind] = stats.failures.get(kind, 0) + 1
        done += 1
        if progress is not None:
            progress(ProgressEvent(done, len(items), stats.skipped, item.id, stats.failed_items, stats.cache_hits))

    tasks = [asyncio.ensure_future(run_one(item)) for item in todo]
    try:
        await asyncio.gather(*tasks)
    except BaseException:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise
    finally:
        store.sync()
    return [ScoredItem(item, store.scores(item.id)) for item in items], stats


# --- precomputed scores ------------------------------------------------------------------------

MISSING_SCORE = "missing_score"
"""Failure kind of a response the precomputed file has no score for."""


class PrecomputedScorer:
    """A scorer that reads another model's per-item scores from a JSONL/JSON file.

    Rows are ``{"id", "scores": [...]}`` aligned with the item's ``responses``, or
    ``{"id", "chosen_scores": [...], "rejected_scores": [...]}`` aligned with its chosen and
    rejected lists; a score may be ``null``, and an optional ``failures`` list (aligned like
    ``scores``) names failure kinds. Because a scorer sees only (prompt, response), the
    file's scores are attached to the items' texts when the scorer is built: the same
    (prompt, response) in two items must have one score (``conflicts`` counts the pairs where
    the file disagrees with itself; the first value is kept). A response without a score
    gets the failure ``missing_score``.
    """

    def __init__(self, path: str | Path, items: Sequence[EvalItem], *, name: str | None = None) -> None:
        self.path = Path(path)
        digest = hashlib.sha256(self.path.read_bytes()).hexdigest()[:12]
        self.identity = f"precomputed:{name or self.path.name}:{digest}"
        self.conflicts = 0
        self.unknown_ids: list[str] = []
        self._scores: dict[tuple[str, str], ResponseScore] = {}
        by_id = {item.id: item for item in items}
        for row in read_rows(self.path):
            item_id = str(row.get("id"))
            item = by_id.get(item_id)
            if item is None:
                self.unknown_ids.append(item_id)
                continue
            for index, result in self._row_scores(row, item).items():
                key = (item.prompt, item.responses[index])
                previous = self._scores.get(key)
                if previous is not None and previous.score != result.score:
                    self.conflicts += 1
                    continue
                self._scores.setdefault(key, result)

    @staticmethod
    def _row_scores(row: dict[str, Any], item: EvalItem) -> dict[int, ResponseScore]:
        def result(value: Any, failure: Any) -> ResponseScore:
            if isinstance(value, list) and len(value) == 1:  # some RM outputs wrap a scalar
                value = value[0]
            if value is None:
                return ResponseScore(None, failure or MISSING_SCORE, "null score in the precomputed file")
            return ResponseScore(float(value), failure)

        failures = row.get("failures") or []
        if "scores" in row:
            values = row["scores"]
            if len(values) != len(item.responses):
                raise InputError(f"{item.id}: {len(values)} scores for {len(item.responses)} responses")
            return {i: result(v, failures[i] if i < len(failures) else None) for i, v in enumerate(values)}
        if "chosen_scores" in row and "rejected_scores" in row:
            chosen, rejected = row["chosen_scores"], row["rejected_scores"]
            if len(chosen) != len(item.chosen) or len(rejected) != len(item.rejected):
                raise InputError(f"{item.id}: chosen/rejected score counts do not match the item")
            out = {index: result(v, None) for index, v in zip(item.chosen, chosen, strict=True)}
            out.update({index: result(v, None) for index, v in zip(item.rejected, rejected, strict=True)})
            return out
        raise InputError(f"{item.id}: a precomputed row needs 'scores' or 'chosen_scores' + 'rejected_scores'")

    async def score(self, prompt: str, responses: list[str]) -> list[ResponseScore]:
        return [
            self._scores.get((prompt, response), ResponseScore(None, MISSING_SCORE, "not in the precomputed file"))
            for response in responses
        ]
