"""Judges as evaluation scorers: the CE-RM group judge and the pairwise baseline.

The runner speaks only :class:`cerm_reward.evaluation.runner.Scorer` (an identity and
``score(prompt, responses)``). These adapters give our two judges that shape, so
``cerm eval`` runs a benchmark with either one, on any engine, through the same store,
cache and metrics as a file of another model's precomputed scores.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path

from cerm_reward.config import CermConfig, JudgeConfig
from cerm_reward.evaluation.items import EvalItem, ResponseScore
from cerm_reward.evaluation.runner import PrecomputedScorer, Scorer
from cerm_reward.judges.cerm import CermJudge
from cerm_reward.judges.hosting import judge_on
from cerm_reward.judges.pairwise import PairwiseJudge

NO_VERDICT = "no_verdict"
"""Failure kind of a response with at least one pairwise game that ended without a verdict."""

# Settings that change how long a run takes but never a score: they stay out of the identity,
# so raising a timeout does not throw the score cache away.
_SCORE_NEUTRAL = {"call_timeout_s", "criteria_cache_size"}


def _settings_digest(settings: dict) -> str:
    text = json.dumps(settings, sort_keys=True, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:12]


def cerm_identity(model_id: str, config: JudgeConfig, template_version: str) -> str:
    """``cerm:<model>:<template>:<digest of the judge settings>``: one cache namespace per configuration."""
    settings = config.model_dump(mode="json", exclude=_SCORE_NEUTRAL | {"kind"})  # the prefix names the kind
    return f"cerm:{model_id}:{template_version}:{_settings_digest(settings)}"


class CermScorer:
    """CE-RM as a scorer: an item's responses are one group, judged under one set of criteria."""

    def __init__(self, judge: CermJudge) -> None:
        self.judge = judge
        self.identity = cerm_identity(judge.engine.model_id, judge.config, judge.template.version)

    async def score(self, prompt: str, responses: list[str]) -> list[ResponseScore]:
        group = await self.judge.score_group(prompt, responses)
        return [ResponseScore.of_judgement(judgement) for judgement in group.judgements]


class PairwiseScorer:
    """The pairwise baseline as a scorer: each response's share of round-robin wins (both orders).

    On a two-response item the chosen share exceeds the rejected share exactly when the net
    vote over the orders (A, B) and (B, A) is positive, so the pointwise metrics reproduce
    JudgeBench's pairwise-judge rule; a game without a verdict gives no points and marks both
    of its responses ``no_verdict``.
    """

    def __init__(self, judge: PairwiseJudge) -> None:
        self.judge = judge
        sampling = judge.sampling.model_dump(mode="json")
        self.identity = f"pairwise:{judge.engine.model_id}:{_settings_digest(sampling)}"

    async def score(self, prompt: str, responses: list[str]) -> list[ResponseScore]:
        if len(responses) < 2:
            return [ResponseScore(None, NO_VERDICT, "a pairwise judge needs two responses") for _ in responses]
        result = await self.judge.round_robin(prompt, responses)
        failed = set(result.failed_indices)
        return [ResponseScore(share, NO_VERDICT if index in failed else None, None) for index, share in enumerate(result.scores)]


JUDGE_KINDS = ("cerm", "pairwise", "critic_rm", "precomputed")


@asynccontextmanager
async def open_scorer(
    kind: str,
    settings: CermConfig,
    items: Sequence[EvalItem],
    scores: Path | None = None,
) -> AsyncIterator[Scorer]:
    """The scorer ``cerm eval --judge`` names, with its engine open for the duration of the block.

    ``precomputed`` reads ``scores`` and opens no engine; ``cerm``, ``pairwise`` and
    ``critic_rm`` run on the judge engine of ``settings``. ``cerm`` and ``critic_rm`` are the
    judges ``settings.judge`` configures (its ``kind`` must match); the pairwise judge uses the
    CE-RM evaluation turn's sampling, so ``--eval-max-tokens`` is its budget.
    """
    if kind == "precomputed":
        if scores is None:
            raise ValueError("--judge precomputed needs --scores FILE")
        yield PrecomputedScorer(scores, items)
        return
    if kind not in JUDGE_KINDS:
        raise ValueError(f"unknown judge {kind!r}; expected one of {', '.join(JUDGE_KINDS)}")
    expected = "critic_rm" if kind == "critic_rm" else "cerm"
    if settings.judge.kind != expected:
        raise ValueError(
            f"--judge {kind} needs a {expected} judge section, the configuration has judge.kind={settings.judge.kind}"
        )
    from cerm_reward.engines import open_engine

    engine = await open_engine(settings.judge_engine)
    try:
        if kind == "pairwise":
            yield PairwiseScorer(PairwiseJudge(engine, settings.judge.evaluation))
            return
        judge = judge_on(engine, settings)
        yield CermScorer(judge) if isinstance(judge, CermJudge) else judge
    finally:
        await engine.aclose()
