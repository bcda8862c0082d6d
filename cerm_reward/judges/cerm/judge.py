"""The CE-RM group judge: criteria once per query, one evaluation per response.

``score_group(query, responses)`` follows the published protocol (docs/method.md §1.1):
a criteria turn shared through the criteria cache, then for every response the
3-message evaluation turn, whose last ``\\boxed{}`` is the score. Around it sit
the safeguards a training loop needs: bounded re-sampling of failed samples, an
optional constrained repair turn, a terminal failure policy, per-call deadlines,
and a context check for long responses. Failures are values on the judgement.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import statistics
import time
from collections.abc import Sequence
from typing import Any

from cerm_reward.config import CermJudgeConfig
from cerm_reward.criteria_cache import CriteriaCache, CriteriaKey, Lookup, normalise_query
from cerm_reward.engines.base import CallFailed, Engine, GenerationParams, Messages, chat_within
from cerm_reward.errors import ConfigError
from cerm_reward.judges.base import settings_digest
from cerm_reward.judges.parsing import extract_criteria_items, parse_evaluation
from cerm_reward.judges.queries import Query, render_query, validate_responses
from cerm_reward.judges.repair import ScoreRepair
from cerm_reward.judges.templates import JudgeTemplate, load_template
from cerm_reward.results import (
    RECOVERABLE_BY_REPAIR,
    Criteria,
    FailureKind,
    GroupResult,
    Judgement,
    SampleOutcome,
    TokenUsage,
)
from cerm_reward.stats import JudgeStats

logger = logging.getLogger(__name__)


class CriteriaUnavailable(RuntimeError):
    """The criteria turn failed after its retries; every response of the group inherits ``kind``."""

    def __init__(self, kind: FailureKind, detail: str) -> None:
        super().__init__(f"{kind.value}: {detail}")
        self.kind = kind
        self.detail = detail


class CermJudge:
    """Scores groups of responses to one query with CE-RM's unified criteria."""

    def __init__(
        self,
        engine: Engine,
        config: CermJudgeConfig | None = None,
        *,
        cache: CriteriaCache[Criteria] | None = None,
        stats: JudgeStats | None = None,
        template: JudgeTemplate | None = None,
    ) -> None:
        self.engine = engine
        self.config = config or CermJudgeConfig()
        self.template = template or load_template(self.config.template)
        self.cache: CriteriaCache[Criteria] = cache or CriteriaCache(self.config.criteria_cache_size)
        self.stats = stats or JudgeStats()
        self._repair_turn = ScoreRepair(self.template.repair, self.config.score_range, self.config.failure.repair_max_tokens)
        self._check_budgets()
        logger.info(
            "CE-RM judge: model=%s template=%s samples/response=%d (%s); %s",
            engine.model_id,
            self.template.version,
            self.config.samples_per_response,
            self.config.aggregate,
            self.config.describe_failure_policy(),
        )

    @property
    def model_id(self) -> str:
        return self.engine.model_id

    @property
    def template_version(self) -> str:
        return self.template.version

    @property
    def identity(self) -> str:
        """``cerm:<model>:<template>:<digest of the judge settings>``: one cache namespace per configuration.

        Settings that change how long a run takes but never a score (timeouts, cache size) stay
        out, so raising a timeout does not throw the evaluation score cache away.
        """
        settings = self.config.model_dump(mode="json", exclude={"call_timeout_s", "criteria_cache_size", "kind"})
        return f"cerm:{self.engine.model_id}:{self.template.version}:{settings_digest(settings)}"

    def stats_snapshot(self) -> dict[str, Any]:
        """What this judge did so far, criteria cache included (``JudgeStats.snapshot``)."""
        return self.stats.snapshot(self.cache.counters)

    def _check_budgets(self) -> None:
        context = self.engine.max_model_len
        for name, flag in (("criteria", "--criteria-max-tokens"), ("evaluation", "--eval-max-tokens")):
            budget = getattr(self.config, name).max_tokens
            if context is not None and budget + self.config.context_margin_tokens >= context:
                raise ConfigError(
                    f"judge.{name}.max_tokens={budget} leaves no room for the prompt in the {context}-token "
                    f"context of {self.engine.model_id}; lower it (e.g. {flag} 512)"
                )

    # ------------------------------------------------------------------ criteria

    def criteria_key(self, query_text: str) -> CriteriaKey:
        return CriteriaKey(self.template.version, self.engine.model_id, normalise_query(query_text))

    async def get_criteria(self, query: Query) -> tuple[Criteria, Lookup]:
        """The shared criteria of ``query``: from the cache, joined in flight, or generated once.

        Calling this before the responses exist (prefetch) hides the criteria turn.
        Raises :class:`CriteriaUnavailable` when the turn failed after its retries.
        """
        query_text = render_query(query)
        key = self.criteria_key(query_text)
        return await self.cache.get_or_create(key, lambda: self._generate_criteria(key, query_text))

    def prefetch(self, query: Query) -> asyncio.Future[Criteria] | None:
        """Start the criteria turn of ``query`` now, without waiting (e.g. when its prompt enters the rollout).

        A ``score_group`` for the query joins the generation in flight or finds it cached.
        A failed prefetch is logged and not cached, so the first real request generates again.
        Returns the generation to await, or None when the criteria are already cached.
        """
        query_text = render_query(query)  # bad input fails here, in the caller, not in the background
        key = self.criteria_key(query_text)
        generation = self.cache.start(key, lambda: self._generate_criteria(key, query_text))
        if generation is not None:
            generation.add_done_callback(self._log_failed_prefetch)
        return generation

    @staticmethod
    def _log_failed_prefetch(generation: asyncio.Future[Criteria]) -> None:
        if not generation.cancelled() and generation.exception() is not None:
            logger.warning("criteria prefetch failed (%s); the first request will retry", generation.exception())

    async def _generate_criteria(self, key: CriteriaKey, query_text: str) -> Criteria:
        sampling = self.config.criteria
        messages = self.template.criteria_messages(query_text)
        failure = CallFailed(FailureKind.BAD_CRITERIA, "no attempt made")
        for attempt in range(1 + self.config.failure.max_resamples):
            params = GenerationParams.of(
                sampling, temperature=sampling.temperature if attempt == 0 else self.config.failure.resample_temperature
            )
            self.stats.criteria_generations += 1
            started = time.perf_counter()
            try:
                result = await self._call(messages, params)
            except CallFailed as error:
                failure = error
                self.stats.count_attempt_failure(error.kind)
                continue
            completion = result.completions[0]
            items = extract_criteria_items(completion.text)
            if not completion.text.strip() or (self.config.require_criteria_block and not items):
                failure = CallFailed(FailureKind.BAD_CRITERIA, "criteria turn gave no [Start of Criteria] block")
                self.stats.count_attempt_failure(failure.kind)
                continue
            digest = hashlib.sha256(repr((key, completion.text)).encode()).hexdigest()[:16]
            return Criteria(
                id=digest,
                text=completion.text,
                items=items,
                truncated=not completion.finished,
                usage=result.usage,
                latency_s=time.perf_counter() - started,
            )
        raise CriteriaUnavailable(failure.kind, f"criteria turn: {failure.detail}")

    async def reset_caches(self) -> bool:
        """Forget cached criteria and empty the engine's prefix cache, so the next call runs cold.

        Benchmarks compare runs on the same engine; without this the second run would be
        served from the first one's caches. Returns whether the engine's cache was emptied.
        """
        self.cache.clear()
        return await self.engine.reset_prefix_cache()

    # ------------------------------------------------------------------ groups

    async def score_group(self, query: Query, responses: Sequence[str], criteria: Criteria | None = None) -> GroupResult:
        """Judge every response to ``query``; one judgement per response, in order.

        ``criteria`` given (generated elsewhere for this query, e.g. by the replica that owns
        it in a pool) are used as they are, and the lookup is reported as ``provided``.
        """
        started = time.perf_counter()
        query_text = render_query(query)
        checked = validate_responses(responses)
        try:
            criteria, lookup = (criteria, "provided") if criteria is not None else await self.get_criteria(query_text)
        except CriteriaUnavailable as error:
            judgements = [
                self._terminal(index, error.kind, error.detail, None, [], [], TokenUsage(), started)
                for index in range(len(checked))
            ]
            result = GroupResult(query_text, None, "miss", judgements, time.perf_counter() - started)
        else:
            judgements = list(
                await asyncio.gather(*(self._judge_response(i, query_text, criteria, r) for i, r in enumerate(checked)))
            )
            result = GroupResult(query_text, criteria, lookup, judgements, time.perf_counter() - started)
        self.stats.record_group(result)
        return result

    async def _judge_response(self, index: int, query_text: str, criteria: Criteria, response: str) -> Judgement:
        started = time.perf_counter()
        usage = TokenUsage()
        if not response.strip() and self.config.empty_response_score is not None:
            return Judgement(
                index,
                self.config.empty_response_score,
                None,
                None,
                criteria.id,
                criteria.text,
                None,
                flags=["empty_response"],
                latency_s=time.perf_counter() - started,
            )
        flags: list[str] = ["criteria_truncated"] if criteria.truncated else []
        fitted = await self._fit_response(query_text, criteria, response)
        if isinstance(fitted, CallFailed):
            return self._terminal(index, fitted.kind, fitted.detail, criteria, [], flags, usage, started)
        if fitted != response:
            flags.append("response_truncated")
        messages = self.template.evaluation_messages(query_text, criteria.text, fitted)

        samples = await self._sample_with_resamples(messages, usage)
        failed = [sample for sample in samples if sample.failure is not None]
        if failed and self.config.failure.repair:
            await asyncio.gather(
                *(self._repair(sample, messages, usage) for sample in failed if sample.failure in RECOVERABLE_BY_REPAIR)
            )

        valid = [sample for sample in samples if sample.failure is None]
        if len(valid) < self.config.min_valid_samples:
            first_failure = next(sample for sample in samples if sample.failure is not None)
            assert first_failure.failure is not None
            return self._terminal(index, first_failure.failure, first_failure.detail, criteria, samples, flags, usage, started)
        aggregate = statistics.median if self.config.aggregate == "median" else statistics.fmean
        chosen = valid[0]
        if any(sample.repaired for sample in valid):
            flags.append("repaired")
        return Judgement(
            index=index,
            score=float(aggregate([sample.score for sample in valid if sample.score is not None])),
            failure=None,
            failure_detail=None,
            criteria_id=criteria.id,
            criteria=criteria.text,
            evaluation=chosen.text,
            criterion_scores=parse_evaluation(chosen.text, score_range=self.config.score_range).criterion_scores,
            samples=samples,
            flags=flags,
            usage=usage,
            latency_s=time.perf_counter() - started,
        )

    async def _sample_with_resamples(self, messages: Messages, usage: TokenUsage) -> list[SampleOutcome]:
        """k samples; then up to ``max_resamples`` rounds that re-generate only the failed ones."""
        k = self.config.samples_per_response
        first_temperature = self.config.evaluation.temperature if k == 1 else self.config.scaling_temperature
        samples = await self._sample(messages, k, first_temperature, usage)
        for round_number in range(1, self.config.failure.max_resamples + 1):
            pending = [position for position, sample in enumerate(samples) if sample.failure is not None]
            if not pending:
                break
            self.stats.resampled += len(pending)
            fresh = await self._sample(messages, len(pending), self.config.failure.resample_temperature, usage)
            for position, outcome in zip(pending, fresh, strict=True):
                outcome.attempts = round_number + 1
                samples[position] = outcome
        return samples

    async def _sample(self, messages: Messages, n: int, temperature: float, usage: TokenUsage) -> list[SampleOutcome]:
        params = GenerationParams.of(self.config.evaluation, temperature=temperature, n=n)
        try:
            result = await self._call(messages, params)
        except CallFailed as error:
            for _ in range(n):
                self.stats.count_attempt_failure(error.kind)
            return [SampleOutcome(None, error.kind, error.detail, "") for _ in range(n)]
        usage.add(result.usage)
        outcomes = []
        for completion in result.completions:
            parsed = parse_evaluation(completion.text, finished=completion.finished, score_range=self.config.score_range)
            if parsed.failure is not None:
                self.stats.count_attempt_failure(parsed.failure)
            outcomes.append(SampleOutcome(parsed.score, parsed.failure, parsed.detail, completion.text))
        return outcomes

    async def _repair(self, sample: SampleOutcome, messages: Messages, usage: TokenUsage) -> None:
        """Ask for the score alone under a regex constraint; on success the sample is marked repaired."""
        self.stats.repairs_attempted += 1
        try:
            reply = await self._repair_turn.ask(self._call, messages, sample.text)
        except CallFailed as error:
            self.stats.count_attempt_failure(error.kind)
            return
        usage.add(reply.usage)
        if reply.score is None:
            return
        self.stats.repairs_succeeded += 1
        assert sample.failure is not None
        sample.detail = reply.detail(sample.failure.value)
        sample.score, sample.failure, sample.repaired = reply.score, None, True

    async def _fit_response(self, query_text: str, criteria: Criteria, response: str) -> str | CallFailed:
        """The response as is, cut to fit the context, or the failure to report."""
        context = self.engine.max_model_len
        if context is None:
            return response
        allowed = context - self.config.evaluation.max_tokens - self.config.context_margin_tokens
        total = await self.engine.count_chat_tokens(self.template.evaluation_messages(query_text, criteria.text, response))
        if total is None or total <= allowed:
            return response
        excess = total - allowed
        detail = f"evaluation prompt of {total} tokens exceeds the {allowed} the context leaves"
        if self.config.overlong_response == "fail":
            return CallFailed(FailureKind.PROMPT_TOO_LONG, detail)
        response_tokens = await self.engine.count_text_tokens(response)
        keep = (response_tokens or 0) - excess
        truncated = await self.engine.truncate_text(response, keep) if keep > 0 else None
        if truncated is None:
            return CallFailed(FailureKind.PROMPT_TOO_LONG, detail + " even without the response")
        return truncated

    async def _call(self, messages: Messages, params: GenerationParams):
        result = await chat_within(self.engine, messages, params, self.config.call_timeout_s)
        self.stats.record_usage(result.usage)
        return result

    def _terminal(
        self,
        index: int,
        kind: FailureKind,
        detail: str | None,
        criteria: Criteria | None,
        samples: list[SampleOutcome],
        flags: list[str],
        usage: TokenUsage,
        started: float,
    ) -> Judgement:
        """A judgement with no judge score: the terminal policy decides the value, the kind stays."""
        last_text = next((sample.text for sample in reversed(samples) if sample.text), None)
        return Judgement(
            index=index,
            score=self.config.failed_score,
            failure=kind,
            failure_detail=detail,
            criteria_id=criteria.id if criteria else None,
            criteria=criteria.text if criteria else None,
            evaluation=last_text,
            samples=samples,
            flags=flags,
            usage=usage,
            latency_s=time.perf_counter() - started,
        )
