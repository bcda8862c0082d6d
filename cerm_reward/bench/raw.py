"""The baseline: the engine calls CE-RM makes for a group, with nothing around them.

A criteria turn, then one evaluation turn per response built from the same template, with
the same budgets: exactly the prompts the judge sends, without the judge, the cache, the
pool or Ray. What ours costs beyond this is the stack's overhead.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from cerm_reward.bench.workload import BenchGroup
from cerm_reward.config import CermJudgeConfig
from cerm_reward.engines.base import Engine, GenerationParams
from cerm_reward.judges.templates import JudgeTemplate


async def raw_group(engine: Engine, template: JudgeTemplate, group: BenchGroup, config: CermJudgeConfig) -> int:
    """Engine calls made: 1 criteria + one per response."""
    criteria = await engine.chat(template.criteria_messages(group.query), GenerationParams.of(config.criteria))
    text = criteria.completions[0].text
    evaluation = GenerationParams.of(config.evaluation)
    await asyncio.gather(
        *(engine.chat(template.evaluation_messages(group.query, text, response), evaluation) for response in group.responses)
    )
    return 1 + len(group.responses)


async def raw_groups(engine: Engine, template: JudgeTemplate, groups: Sequence[BenchGroup], config: CermJudgeConfig) -> int:
    return sum(await asyncio.gather(*(raw_group(engine, template, group, config) for group in groups)))
