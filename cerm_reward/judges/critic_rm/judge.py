"""The ``critic_rm`` judge: k critiques per response from an engine, then the head's score.

It is a ``GroupJudge`` like ``CermJudge``, so every host (the server, the Ray pool, verl,
OpenRLHF, ``cerm score``, ``cerm eval``) serves it unchanged. With k > 1 critiques per response, sampled at
``scaling_temperature``, the score is the mean of the head's k scores (the inference-time
scaling knob). A response whose critique call failed gets no
head score: its judgement names the failure kind and carries ``failure_score``.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Sequence
from typing import Any, Protocol

from cerm_reward.config import CriticJudgeConfig
from cerm_reward.engines.base import CallFailed, ChatResult, Engine, GenerationParams, chat_within
from cerm_reward.judges.critic_rm.templates import CriticTemplate
from cerm_reward.judges.queries import Query, render_query, validate_responses
from cerm_reward.results import Criteria, FailureKind, GroupResult, Judgement, SampleOutcome
from cerm_reward.stats import JudgeStats


class RewardHead(Protocol):
    """What the judge needs from the head (``head_scorer.HeadScorer``)."""

    template: CriticTemplate

    def cut(self, query: str, response: str) -> tuple[str, str]: ...

    def score(self, triples: Sequence[tuple[str, str, str]]) -> list[float]: ...


class CriticRmJudge:
    def __init__(self, engine: Engine, head: RewardHead, config: CriticJudgeConfig, *, stats: JudgeStats | None = None) -> None:
        self.engine = engine
        self.head = head
        self.config = config
        self.template = head.template
        self.stats = stats or JudgeStats()

    @classmethod
    def open(cls, engine: Engine, config: CriticJudgeConfig) -> CriticRmJudge:
        """Load the head from ``config.checkpoint`` (transformers) next to an engine serving the critic."""
        from cerm_reward.judges.critic_rm.head_scorer import HeadScorer

        head = HeadScorer.load(config.checkpoint, device=config.head_device, batch_size=config.head_batch_size)
        return cls(engine, head, config)

    @property
    def model_id(self) -> str:
        """The reward model is the checkpoint (its head gives the score), whoever writes the critiques."""
        return str(self.config.checkpoint)

    @property
    def template_version(self) -> str:
        return self.template.version

    def stats_snapshot(self) -> dict[str, Any]:
        return self.stats.snapshot()

    async def get_criteria(self, query: Query) -> tuple[None, str]:
        """Critic-RM writes no shared criteria: nothing for a pool to pass between replicas."""
        return None, "none"

    def prefetch(self, query: Query) -> None:
        """Nothing to start before the responses exist (each critique reads its response)."""
        render_query(query)  # bad input fails in the caller, as with CE-RM

    async def reset_caches(self) -> bool:
        """Empty the engine's prefix cache, so the next call runs cold (``cerm bench``)."""
        return await self.engine.reset_prefix_cache()

    @property
    def identity(self) -> str:
        """Names everything that changes the scores (the evaluation cache key)."""
        c = self.config
        temperature = c.critique.temperature if c.critiques_per_response == 1 else c.scaling_temperature
        return (
            f"critic_rm:{c.checkpoint}|critic={self.engine.model_id}|template={self.template.version}"
            f"|k={c.critiques_per_response}|T={temperature:g}|max_tokens={c.critique.max_tokens}|seed={c.critique.seed}"
        )

    async def score_group(self, query: Query, responses: Sequence[str], criteria: Criteria | None = None) -> GroupResult:
        """One head score per response (the mean over its k critiques); ``criteria`` is always
        ``None`` here (the ``GroupJudge`` signature, where a pool passes a query's criteria)."""
        started = time.perf_counter()
        query_text = render_query(query)
        checked = validate_responses(responses)
        cut = [self.head.cut(query_text, response) for response in checked]
        calls = await asyncio.gather(*(self._critiques(q, r) for q, r in cut))
        triples = [
            (q, r, c.text)
            for (q, r), call in zip(cut, calls, strict=True)
            if isinstance(call, ChatResult)
            for c in call.completions
        ]
        rewards = iter(await asyncio.to_thread(self.head.score, triples) if triples else [])
        judgements = []
        for index, call in enumerate(calls):
            if not isinstance(call, ChatResult):
                kind, detail = call
                judgements.append(Judgement(index, self.config.failed_score, kind, detail, None, None, None))
                continue
            samples = [SampleOutcome(next(rewards), None, None, c.text) for c in call.completions]
            flags = ["critique_truncated"] if any(not c.finished for c in call.completions) else []
            judgements.append(
                Judgement(
                    index=index,
                    score=statistics.fmean(s.score for s in samples if s.score is not None),
                    failure=None,
                    failure_detail=None,
                    criteria_id=None,
                    criteria=None,
                    evaluation=samples[0].text,
                    samples=samples,
                    flags=flags,
                    usage=call.usage,
                    latency_s=time.perf_counter() - started,  # critiques run together, then one head pass
                )
            )
        result = GroupResult(query_text, None, "none", judgements, time.perf_counter() - started)
        self.stats.record_group(result)
        return result

    async def _critiques(self, query: str, response: str) -> ChatResult | tuple[FailureKind, str]:
        k = self.config.critiques_per_response
        temperature = self.config.critique.temperature if k == 1 else self.config.scaling_temperature
        params = GenerationParams.of(self.config.critique, n=k, temperature=temperature)
        messages = self.template.critique_messages(query, response)
        try:
            result = await chat_within(self.engine, messages, params, self.config.call_timeout_s)
        except CallFailed as failed:
            self.stats.count_attempt_failure(failed.kind)
            return failed.kind, failed.detail
        self.stats.record_usage(result.usage)
        return result
