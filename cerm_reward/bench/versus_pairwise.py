"""Pointwise CE-RM vs a round-robin pairwise judge on the same group, engine and budgets."""

from __future__ import annotations

import asyncio

from cerm_reward.bench.figures import Figure, at_least, reported
from cerm_reward.bench.timing import timed
from cerm_reward.bench.workload import BenchGroup, score_groups
from cerm_reward.judges.cerm.judge import CermJudge
from cerm_reward.judges.pairwise import PairwiseJudge

SECTION = "pointwise vs pairwise"


async def pointwise_vs_pairwise(judge: CermJudge, batches: dict[int, list[BenchGroup]], target_n: int = 8) -> list[Figure]:
    """A batch of groups per n (as a training step sends them), each side from cold caches.

    The pairwise verdicts get the evaluation budget, so a call costs the same on both sides.
    """
    pairwise = PairwiseJudge(judge.engine, judge.config.evaluation)
    figures = []
    for n, groups in batches.items():
        await judge.reset_caches()
        _, cerm = await timed(score_groups(judge, groups))
        await judge.reset_caches()
        games, pairwise_s = await timed(asyncio.gather(*(pairwise.round_robin(group.query, group.responses) for group in groups)))
        calls = sum(game.games for game in games)
        ratio = pairwise_s / cerm
        detail = (
            f"{len(groups)} group(s): CE-RM {cerm:.2f} s ({len(groups) * (n + 1)} calls) vs pairwise "
            f"{pairwise_s:.2f} s ({calls} calls, both orders)"
        )
        name = f"speed-up over pairwise, n={n}"
        figures.append(
            at_least(SECTION, name, ratio, 4.0, "x", detail) if n == target_n else reported(SECTION, name, ratio, "x", detail)
        )
    return figures
