"""Scoring a benchmark's items with any scorer, concurrently and resumably.

The runner knows nothing of benchmarks or engines: a :class:`Scorer` gives one
:class:`ResponseScore` per requested position of an item. It skips items the store already
holds, takes what it can from the cache, asks the scorer for the rest, and writes each item to
the store the moment it is finished. A score that is not a finite number becomes a counted
``invalid_score`` failure here, whichever scorer produced it.
:class:`~cerm_reward.evaluation.precomputed.PrecomputedScorer` is a scorer over a file of
published per-item scores, so any reward model's outputs go through the same metrics as our
judge's.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Protocol, runtime_checkable

from cerm_reward.data.items import EvalItem, ResponseScore, ScoredItem
from cerm_reward.errors import InputError
from cerm_reward.evaluation.store import ResultStore, ScoreCache, group_key, response_key
from cerm_reward.results import FailureKind


class ScoreScope(str, Enum):
    """What a scorer's score of one response depends on, besides the scorer's identity.

    The score cache keys a score by exactly this, so a cached score can never stand in for a
    different one.
    """

    RESPONSE = "response"
    """The prompt and the response alone (a pointwise judge: CE-RM, Critic-RM). Cached per
    response; an item sends only the responses the cache lacks."""
    GROUP = "group"
    """The prompt and every response of the item, in order (the round-robin pairwise judge, any
    listwise judge). Cached per (group, position); an item is always scored whole."""
    ITEM = "item"
    """The item's id and the response's position (precomputed scores read from a file). Never
    cached: the same text in two items may carry two scores."""

    @property
    def cache_rule(self) -> str:
        """How the cache treats this scope, in words for the report."""
        return {
            ScoreScope.RESPONSE: "per response: key = (judge identity, prompt, response)",
            ScoreScope.GROUP: "per group: key = (judge identity, prompt, all responses in order, position)",
            ScoreScope.ITEM: "off: scores are read by item id and position",
        }[self]


@runtime_checkable
class Scorer(Protocol):
    """What the runner needs from a judge or reward model.

    ``identity`` names the judge *and* everything that changes its scores (model, template
    version, decoding settings): it keys the score cache and is recorded with every stored
    item, so two configurations never share results. ``scope`` says what else a score depends
    on (:class:`ScoreScope`), which the cache key follows.
    """

    identity: str
    scope: ScoreScope

    async def score(self, item: EvalItem, positions: Sequence[int]) -> list[ResponseScore]:
        """One result per position of ``item.responses`` asked for, in order (every position
        unless the scope is ``RESPONSE``). A failure on one response is a result, not an exception."""
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


def _cache_keys(item: EvalItem, scorer: Scorer) -> list[str] | None:
    """The cache key of each of the item's responses under the scorer's scope (``None``: not cached)."""
    if scorer.scope is ScoreScope.RESPONSE:
        return [response_key(scorer.identity, item.prompt, response) for response in item.responses]
    if scorer.scope is ScoreScope.GROUP:
        return [group_key(scorer.identity, item.prompt, item.responses, i) for i in range(len(item.responses))]
    return None


async def _score_item(
    item: EvalItem, scorer: Scorer, cache: ScoreCache | None, stats: RunStats, *, raise_errors: bool
) -> list[ResponseScore]:
    results: list[ResponseScore | None] = [None] * len(item.responses)
    keys = _cache_keys(item, scorer) if cache is not None else None
    if cache is not None and keys is not None:
        hits = [cache.get(key) for key in keys]
        if scorer.scope is ScoreScope.GROUP and None in hits:
            hits = [None] * len(hits)  # a group is scored whole: part of it from the cache would be another group
        for index, hit in enumerate(hits):
            results[index] = hit
        stats.cache_hits += sum(hit is not None for hit in hits)
        stats.cache_misses += sum(hit is None for hit in hits)
    missing = [i for i, r in enumerate(results) if r is None]
    if missing:
        stats.scorer_calls += 1
        try:
            fresh = await scorer.score(item, missing)
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
            results[index] = result.finite()
            if cache is not None and keys is not None:
                cache.put(keys[index], scorer.identity, results[index])
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
