"""A pairwise LLM judge: the baseline CE-RM is measured against.

Many RLHF setups rank a GRPO group with a pairwise judge: every pair of rollouts, in both
orders to cancel position bias, gives a verdict, and a response's score is its share of
wins (ties count half). That costs n(n-1) judge calls per group where CE-RM needs n + 1,
and each call reads two responses. ``cerm bench`` runs this judge on the same engine and
budgets as CE-RM to measure the difference; the prompt below is this project's own.
"""

from __future__ import annotations

import asyncio
import itertools
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

from cerm_reward.config import SamplingConfig
from cerm_reward.engines.base import Engine, GenerationParams, Messages
from cerm_reward.results import TokenUsage

Verdict = Literal["A", "B", "tie"]

_SYSTEM = (
    "You compare two assistant responses to the same user request. Judge which one serves the user "
    "better: correctness, helpfulness, following the instructions, and safety. Ignore the order in "
    "which they are shown and their length. Explain briefly, then end with exactly one verdict: "
    "[[A]] if Response A is better, [[B]] if Response B is better, [[C]] for a tie."
)
_USER = "[User Request]\n{query}\n\n[Response A]\n{first}\n\n[Response B]\n{second}"
_VERDICT = re.compile(r"\[\[([ABC])\]\]")


def pairwise_messages(query: str, first: str, second: str) -> Messages:
    return [
        {"role": "system", "content": _SYSTEM},
        {"role": "user", "content": _USER.format(query=query, first=first, second=second)},
    ]


def parse_verdict(text: str) -> Verdict | None:
    """The last ``[[A]]`` / ``[[B]]`` / ``[[C]]`` of a reply; None when there is none (a counted failure)."""
    found = _VERDICT.findall(text)
    if not found:
        return None
    return {"A": "A", "B": "B", "C": "tie"}[found[-1]]


@dataclass
class RoundRobinResult:
    """Scores in [0, 1] (share of games won, ties half) with the cost of getting them."""

    scores: list[float]
    games: int
    failed_games: int
    usage: TokenUsage = field(default_factory=TokenUsage)
    verdicts: Counter[str] = field(default_factory=Counter)
    failed_indices: set[int] = field(default_factory=set)
    """Responses that took part in a game without a verdict (their score lacks those points)."""


class PairwiseJudge:
    """Judges a pair of responses; :meth:`round_robin` ranks a whole group."""

    def __init__(self, engine: Engine, sampling: SamplingConfig) -> None:
        self.engine = engine
        self.sampling = sampling

    async def compare(self, query: str, first: str, second: str) -> tuple[Verdict | None, TokenUsage]:
        params = GenerationParams.of(self.sampling)
        result = await self.engine.chat(pairwise_messages(query, first, second), params)
        return parse_verdict(result.completions[0].text), result.usage

    async def round_robin(self, query: str, responses: Sequence[str]) -> RoundRobinResult:
        """Every ordered pair (both orders), all at once; a failed game gives no points to either side."""
        pairs = list(itertools.permutations(range(len(responses)), 2))
        outcomes = await asyncio.gather(*(self.compare(query, responses[a], responses[b]) for a, b in pairs))
        points = [0.0] * len(responses)
        result = RoundRobinResult(points, len(pairs), 0)
        for (a, b), (verdict, usage) in zip(pairs, outcomes, strict=True):
            result.usage.add(usage)
            result.verdicts[verdict or "failed"] += 1
            if verdict is None:
                result.failed_games += 1
                result.failed_indices.update((a, b))
            elif verdict == "tie":
                points[a] += 0.5
                points[b] += 0.5
            else:
                points[a if verdict == "A" else b] += 1.0
        games_each = max(2 * (len(responses) - 1), 1)
        result.scores = [value / games_each for value in points]
        return result
