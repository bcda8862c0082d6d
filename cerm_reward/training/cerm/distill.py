"""SFT warm-start data: judge conversations distilled from a stronger judge, kept when they rank the pair right.

The CE-RM paper fine-tunes the base model before RL (batch 64, lr 1e-5, 3 epochs) without
publishing its SFT data. Our recipe: let a stronger judge (any model behind the HTTP engine,
CE-RM-4B included) run the published two-turn protocol on the training pairs, and keep a pair's
conversations only when its scores rank the chosen response strictly above the rejected one —
a consistency filter, so the warm start does not teach evaluations that contradict the label.
Each kept pair gives two conversations in verl's multi-turn SFT layout (``messages``):
[criteria prompt, criteria, evaluation prompt, evaluation] for the chosen and for the rejected
response, so both the criteria turn and the evaluation turn are trained.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

from cerm_reward.data.pairs import PreferencePair


async def distill_conversations(
    pairs: Sequence[PreferencePair],
    judge: Any,
    *,
    concurrency: int = 16,
    on_pair_done: Callable[[], None] | None = None,
) -> tuple[list[dict[str, Any]], Counter[str]]:
    """SFT rows from ``judge`` (a :class:`CermJudge`) on ``pairs``, and why pairs were dropped.

    Counts: ``kept``, ``unscored`` (a failure or a repaired score on either response), ``wrong`` (chosen not above rejected).
    """
    gate = asyncio.Semaphore(concurrency)
    counts: Counter[str] = Counter()

    async def one(pair: PreferencePair) -> list[dict[str, Any]]:
        async with gate:
            result = await judge.score_group(pair.query, [pair.chosen, pair.rejected])
        if on_pair_done is not None:
            on_pair_done()
        chosen, rejected = result.judgements
        if result.criteria is None or any(j.failure is not None or "repaired" in j.flags for j in (chosen, rejected)):
            counts["unscored"] += 1  # a repaired score is not in the evaluation text, so the text would not teach it
            return []
        if not chosen.score > rejected.score:
            counts["wrong"] += 1
            return []
        counts["kept"] += 1
        template = judge.template
        return [
            {
                "messages": [
                    *template.evaluation_messages(pair.query, result.criteria.text, response),
                    {"role": "assistant", "content": judgement.evaluation},
                ],
                "pair_id": pair.id,
                "role": role,
                "score": judgement.score,
            }
            for role, response, judgement in (("chosen", pair.chosen, chosen), ("rejected", pair.rejected, rejected))
        ]

    rows = [row for rows in await asyncio.gather(*(one(p) for p in pairs)) for row in rows]
    return rows, counts
