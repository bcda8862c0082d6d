"""Unified criteria, prefix reuse and prefetch: what sharing one criteria per query buys.

All three run on one judge in this process, from cold caches each time.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Sequence

from cerm_reward.bench.figures import Figure, at_least, reported
from cerm_reward.bench.timing import timed
from cerm_reward.bench.workload import BenchGroup
from cerm_reward.criteria_cache import CriteriaCache
from cerm_reward.judges.cerm.judge import CermJudge


async def unified_criteria(judge: CermJudge, groups_by_n: dict[int, list[BenchGroup]]) -> list[Figure]:
    """Per-sample calls (as verl's reward loop makes them), every sample of every group at once, in random
    order, vs a judge that writes criteria for each response (its cache never shared)."""
    figures = []
    for n, groups in groups_by_n.items():
        samples = [(group.query, response) for group in groups for response in group.responses]
        random.Random(n).shuffle(samples)
        await judge.reset_caches()
        before = judge.stats.criteria_generations
        _, ours = await timed(asyncio.gather(*(judge.score_group(query, [response]) for query, response in samples)))
        generations = judge.stats.criteria_generations - before

        await judge.reset_caches()
        before = judge.stats.criteria_generations

        def fresh() -> CermJudge:
            return CermJudge(judge.engine, judge.config, cache=CriteriaCache(), stats=judge.stats, template=judge.template)

        _, separate = await timed(asyncio.gather(*(fresh().score_group(query, [response]) for query, response in samples)))
        baseline_generations = judge.stats.criteria_generations - before
        per_group = generations / len(groups)
        figures.append(
            Figure(
                "unified criteria",
                f"criteria generations per group, n={n}",
                per_group,
                "",
                "== 1",
                per_group == 1,
                f"{len(samples)} concurrent per-sample calls over {len(groups)} groups; "
                f"per-response criteria: {baseline_generations / len(groups):g} per group",
            )
        )
        figures.append(
            reported(
                "unified criteria",
                f"wall time per group, n={n}",
                ours / len(groups),
                "s",
                f"per-response criteria: {separate / len(groups):.2f} s ({separate / ours:.2f}x)",
            )
        )
    return figures


def common_prefix_length(sequences: Sequence[Sequence[int]]) -> int:
    first = sequences[0]
    length = len(first)
    for other in sequences[1:]:
        length = min(length, len(other))
        for position in range(length):
            if other[position] != first[position]:
                length = position
                break
    return length


async def prefix_reuse(judge: CermJudge, group: BenchGroup) -> list[Figure]:
    """The engine's own cached-token counts on a group's evaluation prompts vs their shared prefix."""
    await judge.reset_caches()
    result = await judge.score_group(group.query, group.responses)
    assert result.criteria is not None
    ids = [
        judge.engine.chat_token_ids(judge.template.evaluation_messages(result.query, result.criteria.text, response))
        for response in group.responses
    ]
    shared = common_prefix_length(ids)
    cached = sum(min(judgement.usage.cached_prompt_tokens, shared) for judgement in result.judgements)
    n = len(group.responses)
    share = cached / (n * shared)
    return [
        at_least(
            "prefix reuse",
            f"shared-prefix tokens served from cache, n={n}",
            share,
            (n - 1) / n,
            "",
            f"{cached} of {n} x {shared} shared tokens (prompts {min(map(len, ids))}-{max(map(len, ids))} tokens); "
            f"engine counters (vLLM num_cached_tokens)",
        )
    ]


async def prefetch(judge: CermJudge, groups: Sequence[BenchGroup], policy_margin: float = 1.25) -> list[Figure]:
    """Criteria wait inside a group's judging, without and with a prefetch fired when the prompt arrives.

    The policy's generation is simulated by a sleep (it runs on other devices). The run without
    prefetch measures how long the criteria take under this load; the run with prefetch then
    gives the policy ``policy_margin`` times that, the issue's "at least as long" condition.
    """

    async def one(group: BenchGroup, policy_s: float, fire: bool) -> tuple[float, float]:
        if fire:
            judge.prefetch(group.query)
        await asyncio.sleep(policy_s)
        _, wait = await timed(judge.get_criteria(group.query))
        _, rest = await timed(judge.score_group(group.query, group.responses))
        return wait, rest

    await judge.reset_caches()
    without = await asyncio.gather(*(one(group, 0.5, False) for group in groups))
    policy_s = policy_margin * max(wait for wait, _ in without)
    await judge.reset_caches()
    with_prefetch = await asyncio.gather(*(one(group, policy_s, True) for group in groups))

    def share(runs: Sequence[tuple[float, float]]) -> float:
        return sum(wait for wait, _ in runs) / sum(wait + rest for wait, rest in runs)

    wait_without = sum(wait for wait, _ in without)
    wait_with = sum(wait for wait, _ in with_prefetch)
    return [
        reported("prefetch", "criteria share of judge time, no prefetch", share(without), ""),
        reported(
            "prefetch", "criteria share of judge time, prefetch", share(with_prefetch), "", f"policy simulated {policy_s:.2f} s"
        ),
        at_least(
            "prefetch",
            "criteria time hidden",
            1 - wait_with / wait_without,
            0.95,
            "",
            f"{len(groups)} groups; criteria wait per group {wait_without / len(groups):.2f} s "
            f"-> {wait_with / len(groups):.3f} s",
        ),
    ]
