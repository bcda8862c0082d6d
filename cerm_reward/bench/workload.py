"""The bench's input: GRPO-like groups of n responses, and the judge settings that make runs repeatable.

Queries and response texts come from a rollouts file (``cerm score``'s format); a group of n
takes its responses round-robin from all the file's responses, so any n can be built from a
small file. Lengths are fixed by the token budgets with ``ignore_eos``: every run generates
the same number of tokens, whatever the model writes.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from cerm_reward.config import CermJudgeConfig, FailurePolicy, SamplingConfig
from cerm_reward.errors import InputError
from cerm_reward.judges.queries import render_query
from cerm_reward.scoring.rollouts import read_rollouts


@dataclass(frozen=True)
class BenchGroup:
    query: str
    responses: list[str]


class GroupScorer(Protocol):
    """A judge or a judge pool: both score a group the same way."""

    async def score_group(self, query: Any, responses: Sequence[str]) -> Any: ...


async def score_groups(scorer: GroupScorer, groups: Sequence[BenchGroup]) -> None:
    """All groups at once, as a training step sends them."""
    await asyncio.gather(*(scorer.score_group(group.query, group.responses) for group in groups))


def response_count(groups: Sequence[BenchGroup]) -> int:
    return sum(len(group.responses) for group in groups)


@dataclass(frozen=True)
class Corpus:
    queries: list[str]
    responses: list[str]

    @classmethod
    def read(cls, path: Path) -> Corpus:
        groups, _ = read_rollouts(path)
        if not groups:
            raise InputError(f"{path}: no rollout groups")
        responses = [response for group in groups for response in group.responses if response.strip()]
        return cls([render_query(group.query) for group in groups], responses)

    def groups(self, count: int, n: int, *, first: int = 0) -> list[BenchGroup]:
        """``count`` groups of ``n`` responses; queries beyond the file's are numbered to stay distinct."""
        built = []
        for index in range(first, first + count):
            query = self.queries[index % len(self.queries)]
            if index >= len(self.queries):
                query = f"{query}\n\n(Request {index})"
            responses = [self.responses[(index * n + slot) % len(self.responses)] for slot in range(n)]
            built.append(BenchGroup(query, responses))
        return built


def bench_judge_config(criteria_tokens: int, evaluation_tokens: int, *, call_timeout_s: float = 600.0) -> CermJudgeConfig:
    """Fixed-length turns and no failure recovery, so ours and the baseline make the same engine calls.

    Re-sampling and the repair turn are what a weak judge costs, not what the stack costs; the
    bench reports them separately (tokens per judged response with the default policy).
    """
    return CermJudgeConfig(
        criteria=SamplingConfig(max_tokens=criteria_tokens, ignore_eos=True),
        evaluation=SamplingConfig(max_tokens=evaluation_tokens, ignore_eos=True),
        failure=FailurePolicy(max_resamples=0, repair=False, on_failure="neutral"),
        call_timeout_s=call_timeout_s,
    )
