"""Scoring a rollouts file: groups in flight together so the engine batches them."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from cerm_reward.judges.base import GroupJudge
from cerm_reward.results import GroupResult
from cerm_reward.scoring.output import ResumableJsonlWriter
from cerm_reward.scoring.rollouts import RolloutGroup


@dataclass
class RunSummary:
    groups: int = 0
    responses: int = 0
    skipped_done: int = 0
    written: int = 0
    wall_s: float = 0.0
    judge: dict[str, Any] = field(default_factory=dict)

    @property
    def responses_per_s(self) -> float:
        return self.responses / self.wall_s if self.wall_s else 0.0


def output_records(group: RolloutGroup, result: GroupResult, model_id: str, template: str) -> list[dict[str, Any]]:
    return [{"id": group.id, **judgement.to_dict(), "model": model_id, "template": template} for judgement in result.judgements]


async def score_groups(
    judge: GroupJudge,
    groups: list[RolloutGroup],
    writer: ResumableJsonlWriter,
    *,
    concurrency: int = 8,
    on_progress: Callable[[int], None] | None = None,
) -> RunSummary:
    """Score the groups not yet in ``writer``.

    ``on_progress(n)`` is called once with the responses already done (a resumed run), then
    after each group with its n new lines.
    """
    summary = RunSummary()
    pending = []
    for group in groups:
        done = sum(writer.is_done(group.id, i) for i in range(len(group.responses)))
        summary.skipped_done += done
        if done < len(group.responses):
            pending.append(group)
    if on_progress is not None and summary.skipped_done:
        on_progress(summary.skipped_done)
    gate = asyncio.Semaphore(concurrency)
    started = time.perf_counter()

    async def run(group: RolloutGroup) -> None:
        async with gate:
            result = await judge.score_group(group.query, group.responses)
        written = writer.write_group(output_records(group, result, judge.model_id, judge.template_version))
        summary.groups += 1
        summary.responses += len(result.judgements)
        summary.written += written
        if on_progress is not None:
            on_progress(written)

    await asyncio.gather(*(run(group) for group in pending))
    summary.wall_s = time.perf_counter() - started
    summary.judge = judge.stats_snapshot()
    return summary
