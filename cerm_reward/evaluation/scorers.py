"""Judges as evaluation scorers: any group judge and the pairwise baseline.

The runner speaks only :class:`cerm_reward.evaluation.scoring_loop.Scorer` (an identity, the
scope its scores depend on, and ``score(item, positions)``). These adapters give our judges that shape, so
``cerm eval`` runs a benchmark with either one, on any engine, through the same store,
cache and metrics as a file of another model's precomputed scores.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

from cerm_reward.config import CermConfig
from cerm_reward.data.items import EvalItem, ResponseScore
from cerm_reward.errors import ConfigError
from cerm_reward.evaluation.precomputed import PrecomputedScorer
from cerm_reward.evaluation.scoring_loop import Scorer, ScoreScope
from cerm_reward.judges.base import GroupJudge, settings_digest
from cerm_reward.judges.pairwise import PairwiseJudge
from cerm_reward.judges.registry import judge_on

NO_VERDICT = "no_verdict"
"""Failure kind of a response with at least one pairwise game that ended without a verdict."""


class JudgeScorer:
    """A group judge (any ``judge.kind``) as a scorer: an item's responses are one group.

    Both judge kinds score a response from the query and that response alone (CE-RM's criteria
    come from the query), so the scope is ``RESPONSE`` and a cache hit may leave a smaller group.
    """

    scope = ScoreScope.RESPONSE

    def __init__(self, judge: GroupJudge) -> None:
        self.judge = judge
        self.identity = judge.identity

    async def score(self, item: EvalItem, positions: Sequence[int]) -> list[ResponseScore]:
        group = await self.judge.score_group(item.prompt, [item.responses[i] for i in positions])
        return [ResponseScore.of_judgement(judgement) for judgement in group.judgements]


class PairwiseScorer:
    """The pairwise baseline as a scorer: each response's share of round-robin wins (both orders).

    On a two-response item the chosen share exceeds the rejected share exactly when the net
    vote over the orders (A, B) and (B, A) is positive, so the pointwise metrics reproduce
    JudgeBench's pairwise-judge rule; a game without a verdict gives no points and marks both
    of its responses ``no_verdict``. A share depends on every other response of the item, so the
    scope is ``GROUP``: the item is always judged whole and cached as a whole.
    """

    scope = ScoreScope.GROUP

    def __init__(self, judge: PairwiseJudge) -> None:
        self.judge = judge
        sampling = judge.sampling.model_dump(mode="json")
        self.identity = f"pairwise:{judge.engine.model_id}:{settings_digest(sampling)}"

    async def score(self, item: EvalItem, positions: Sequence[int]) -> list[ResponseScore]:
        if len(item.responses) < 2:
            return [ResponseScore(None, NO_VERDICT, "a pairwise judge needs two responses") for _ in positions]
        result = await self.judge.round_robin(item.prompt, item.responses)
        failed = set(result.failed_indices)
        return [ResponseScore(result.scores[i], NO_VERDICT if i in failed else None, None) for i in positions]


JUDGE_KINDS = ("cerm", "pairwise", "critic_rm", "precomputed")


@asynccontextmanager
async def open_scorer(
    kind: str,
    settings: CermConfig,
    precomputed: PrecomputedScorer | None = None,
) -> AsyncIterator[Scorer]:
    """The scorer ``cerm eval --judge`` names, with its engine open for the duration of the block.

    ``precomputed`` is the scores file, read before (so its match with the items is checked
    before anything starts), and opens no engine; ``cerm``, ``pairwise`` and
    ``critic_rm`` run on the judge engine of ``settings``. ``cerm`` and ``critic_rm`` are the
    judges ``settings.judge`` configures (its ``kind`` must match); the pairwise judge uses the
    CE-RM evaluation turn's sampling, so ``--eval-max-tokens`` is its budget.
    """
    if kind == "precomputed":
        if precomputed is None:
            raise ConfigError("--judge precomputed needs --scores FILE")
        yield precomputed
        return
    if kind not in JUDGE_KINDS:
        raise ConfigError(f"unknown judge {kind!r}; expected one of {', '.join(JUDGE_KINDS)}")
    expected = "critic_rm" if kind == "critic_rm" else "cerm"
    if settings.judge.kind != expected:
        raise ConfigError(
            f"--judge {kind} needs a {expected} judge section, the configuration has judge.kind={settings.judge.kind}"
        )
    from cerm_reward.engines import opened_engine

    async with opened_engine(settings.judge_engine) as engine:
        if kind == "pairwise":
            yield PairwiseScorer(PairwiseJudge(engine, settings.judge.evaluation))
        else:
            yield JudgeScorer(judge_on(engine, settings))
