"""The common item and score types every loader, metric and store speaks.

A benchmark row of any format becomes one :class:`EvalItem`: a prompt, the responses to
score, and which of them are chosen or rejected. Scoring is pointwise, so a pair, a
best-of-4 set and an RM-Bench 3+3 group are all "a prompt with responses"; the metric
decides what the labels mean. Keeping one shape lets the runner, the store and the cache
ignore the benchmark entirely.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from cerm_reward.results import Judgement


@dataclass(frozen=True)
class EvalItem:
    """One benchmark row, ready to be scored response by response.

    ``id`` is stable across runs (the source's own id, or a content hash when it has
    none) and unique within a benchmark: the result store resumes a run by it.
    ``chosen`` and ``rejected`` index into ``responses``; ``meta`` carries what a metric
    or plot needs besides the text (RM-Bench style per response, word counts, needle
    position, best-of-N quality values, the source's own id).
    """

    id: str
    benchmark: str
    subset: str
    prompt: str
    responses: list[str]
    chosen: list[int]
    rejected: list[int]
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.id:
            raise ValueError("EvalItem.id: empty")
        if not self.responses:
            raise ValueError(f"{self.id}: no responses")
        for name, indices in (("chosen", self.chosen), ("rejected", self.rejected)):
            for index in indices:
                if not 0 <= index < len(self.responses):
                    raise ValueError(f"{self.id}: {name} index {index} outside 0..{len(self.responses) - 1}")
        if set(self.chosen) & set(self.rejected):
            raise ValueError(f"{self.id}: a response is both chosen and rejected")

    @property
    def chosen_responses(self) -> list[str]:
        return [self.responses[i] for i in self.chosen]

    @property
    def rejected_responses(self) -> list[str]:
        return [self.responses[i] for i in self.rejected]

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "benchmark": self.benchmark,
            "subset": self.subset,
            "prompt": self.prompt,
            "responses": list(self.responses),
            "chosen": list(self.chosen),
            "rejected": list(self.rejected),
            "meta": dict(self.meta),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EvalItem:
        return cls(
            id=str(data["id"]),
            benchmark=str(data["benchmark"]),
            subset=str(data["subset"]),
            prompt=str(data["prompt"]),
            responses=[str(r) for r in data["responses"]],
            chosen=[int(i) for i in data["chosen"]],
            rejected=[int(i) for i in data["rejected"]],
            meta=dict(data.get("meta") or {}),
        )


INVALID_SCORE = "invalid_score"
"""Failure kind of a score that is not a finite number (NaN, inf, text, a list...): counted, never compared."""


@dataclass(frozen=True)
class ResponseScore:
    """The scorer's verdict on one response.

    ``score`` is ``None`` when the judge produced no usable score; ``failure`` then names
    why (a :class:`cerm_reward.results.FailureKind` value, or another short kind such as
    ``missing_score`` for a precomputed file without the response). A failure *with* a
    score is a substituted value (the judge's terminal policy): the metrics use the score
    and still count the failure. ``length`` is the response length in the scorer's own
    tokens when it knows them (the length plots fall back to words).
    """

    score: float | None
    failure: str | None = None
    detail: str | None = None
    length: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"score": self.score, "failure": self.failure, "detail": self.detail, "length": self.length}

    def finite(self) -> ResponseScore:
        """This result, or an ``invalid_score`` failure when its score is not a finite number.

        NaN compares false with everything and inf beats everything, so either would decide a
        comparison silently; as a failure it is counted and every comparison needing it is 0.
        """
        if self.score is None or math.isfinite(self.score):
            return self
        return ResponseScore(None, INVALID_SCORE, f"score {self.score!r} is not a finite number", self.length)

    @classmethod
    def of_judgement(cls, judgement: Judgement) -> ResponseScore:
        """A judge's judgement as the harness stores it: score, failure kind and its detail."""
        failure = judgement.failure.value if judgement.failure is not None else None
        return cls(judgement.score, failure, judgement.failure_detail)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ResponseScore:
        score = data.get("score")
        return cls(
            score=None if score is None else float(score),
            failure=data.get("failure"),
            detail=data.get("detail"),
            length=data.get("length"),
        ).finite()


@dataclass(frozen=True)
class ScoredItem:
    """An item with one :class:`ResponseScore` per response, in the order of ``item.responses``."""

    item: EvalItem
    scores: list[ResponseScore]

    def __post_init__(self) -> None:
        if len(self.scores) != len(self.item.responses):
            raise ValueError(f"{self.item.id}: {len(self.scores)} scores for {len(self.item.responses)} responses")
        for position, result in enumerate(self.scores):
            if result.score is not None and not math.isfinite(result.score):
                raise ValueError(
                    f"{self.item.id}[{position}]: score {result.score!r} reached a metric; use ResponseScore.finite()"
                )

    @property
    def values(self) -> list[float | None]:
        return [s.score for s in self.scores]

    @property
    def failure_kinds(self) -> tuple[str, ...]:
        """The distinct failure kinds among this item's responses, in first-seen order."""
        kinds: list[str] = []
        for s in self.scores:
            if s.failure is not None and s.failure not in kinds:
                kinds.append(s.failure)
        return tuple(kinds)


def content_id(*parts: Any, length: int = 16) -> str:
    """A stable id from content, for rows whose source has none.

    Parts are JSON-encoded before hashing so that ``("ab", "c")`` and ``("a", "bc")`` differ.
    """
    payload = json.dumps(list(parts), ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()[:length]


def word_count(text: str) -> int:
    """Whitespace-separated words: the length unit used where no tokenizer is given."""
    return len(text.split())


def ensure_unique_ids(items: Sequence[EvalItem]) -> list[EvalItem]:
    """Return the items with repeated ids made unique by a ``#n`` suffix (first keeps its id).

    A resumable run is keyed by id, so two rows sharing one would make the second look
    finished. The original id is kept in ``meta["duplicate_of"]``.
    """
    seen: dict[str, int] = {}
    out: list[EvalItem] = []
    for item in items:
        count = seen.get(item.id, 0) + 1
        seen[item.id] = count
        if count == 1:
            out.append(item)
            continue
        new_id = f"{item.id}#{count}"
        while new_id in seen:
            count += 1
            new_id = f"{item.id}#{count}"
        seen[new_id] = 1
        out.append(
            EvalItem(
                id=new_id,
                benchmark=item.benchmark,
                subset=item.subset,
                prompt=item.prompt,
                responses=item.responses,
                chosen=item.chosen,
                rejected=item.rejected,
                meta={**item.meta, "duplicate_of": item.id},
            )
        )
    return out
