"""Small builders shared by the evaluation tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cerm_reward.data.items import EvalItem, ResponseScore, ScoredItem

SHARED_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
"""The read-only benchmark data beside the checkout (never copied into the repository)."""


def scored(
    scores: list[float | None],
    *,
    chosen: list[int] | None = None,
    rejected: list[int] | None = None,
    subset: str = "s",
    item_id: str | None = None,
    benchmark: str = "pairs",
    failures: dict[int, str] | None = None,
    meta: dict[str, Any] | None = None,
) -> ScoredItem:
    """An item whose responses are placeholders and whose scores are given; chosen defaults to
    index 0 and rejected to the rest. A ``None`` score gets the failure ``no_score`` unless
    ``failures`` names another kind; ``failures`` may also mark a scored response (substituted)."""
    failures = dict(failures or {})
    chosen = [0] if chosen is None else chosen
    rejected = [i for i in range(len(scores)) if i not in chosen] if rejected is None else rejected
    results = []
    for index, value in enumerate(scores):
        kind = failures.get(index, "no_score" if value is None else None)
        results.append(ResponseScore(value, kind))
    item = EvalItem(
        id=item_id or f"{subset}-{id(results)}",
        benchmark=benchmark,
        subset=subset,
        prompt="p",
        responses=[f"r{i}" for i in range(len(scores))],
        chosen=chosen,
        rejected=rejected,
        meta=meta or {},
    )
    return ScoredItem(item, results)
