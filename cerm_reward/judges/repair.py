"""The format-repair turn: one constrained call that asks a failed evaluation for its final score.

An evaluation that ran out of tokens or never wrote its ``\\boxed{}`` score has still done the
reasoning; replaying it and asking for the score alone, with the output held by a regex to
``\\boxed{s}`` inside the score range, usually recovers a usable score for a few tokens. CE-RM's
judge and the Critic-RM data builder both use this turn, with CE-RM's request text
(``cerm-v1/repair.txt``); each keeps its own counting of what the turn cost and gave.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from cerm_reward.engines.base import ChatResult, GenerationParams, Messages
from cerm_reward.judges.parsing import parse_evaluation
from cerm_reward.results import TokenUsage

Call = Callable[[Messages, GenerationParams], Awaitable[ChatResult]]
"""How a caller reaches its engine (under its own deadline and accounting); raises ``CallFailed``."""


def score_regex(score_range: tuple[float, float]) -> str:
    """Structured-output regex for ``\\boxed{s}`` with s an integer or half point inside the range."""
    low, high = int(score_range[0]), int(score_range[1])
    below_top = "|".join(str(value) for value in range(high - 1, low - 1, -1))
    return rf"\\boxed\{{(?:{high}|(?:{below_top})(?:\.5)?)\}}"


@dataclass(frozen=True)
class RepairReply:
    """What the repair turn gave: the score (``None`` when the reply held none) and the reply itself."""

    score: float | None
    text: str
    usage: TokenUsage

    def detail(self, failure: str) -> str:
        """The sample's detail once repaired: the failure it had and the reply that fixed it."""
        return f"repaired after {failure}: {self.text.strip()}"


@dataclass(frozen=True)
class ScoreRepair:
    """The repair turn of one judge: its request text, score range and token budget."""

    request: str
    """The user turn that asks for the score alone (a template's ``repair`` text)."""
    score_range: tuple[float, float]
    max_tokens: int

    def messages(self, evaluation_messages: Messages, failed_reply: str) -> Messages:
        """The evaluation turn, its failed reply, then the request for the score alone."""
        return [
            *evaluation_messages,
            {"role": "assistant", "content": failed_reply},
            {"role": "user", "content": self.request},
        ]

    def params(self) -> GenerationParams:
        """Greedy, a few tokens, and held by :func:`score_regex` to a score in range."""
        return GenerationParams(max_tokens=self.max_tokens, temperature=0.0, regex=score_regex(self.score_range))

    async def ask(self, call: Call, evaluation_messages: Messages, failed_reply: str) -> RepairReply:
        """Run the turn through ``call``; a failed call raises its ``CallFailed`` for the caller to count."""
        result = await call(self.messages(evaluation_messages, failed_reply), self.params())
        text = result.completions[0].text
        return RepairReply(parse_evaluation(text, score_range=self.score_range).score, text, result.usage)
