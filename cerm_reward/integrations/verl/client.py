"""What the reward manager and ``compute_score`` share: one sample in, one reward + extra info out.

Each verl reward worker is its own process and sees single samples in random order,
so the group is rebuilt in the pool rather than here: every sample of a query is
routed to the query's home replica, whose single-flight criteria cache generates the
criteria once and serves them to the rest of the group, whichever worker asks.

Every sample gets a reward: a pool that cannot be reached within its call deadline, or
an engine that raised in a replica, is a failure of kind ``pool_unreachable`` /
``engine_error`` scored with the failure policy's value, recorded like any other
failure. Raising instead would make verl drop the rollout without a trace in
``cerm/failure_rate``.
"""

from __future__ import annotations

import functools
import logging
import time
from collections import OrderedDict
from typing import Any

import ray

from cerm_reward.config import CermConfig
from cerm_reward.criteria_cache import query_digest
from cerm_reward.integrations.verl.extra_info import error_extra_info, extra_info_of
from cerm_reward.integrations.verl.metrics import ENGINE_ERROR, INVALID_INPUT, POOL_UNREACHABLE, MetricsCollector
from cerm_reward.integrations.verl.policy_output import clean_policy_output
from cerm_reward.integrations.verl.reward_servers import verl_reward_server_addresses
from cerm_reward.integrations.verl.settings import VerlJudgeSettings, current_job_namespace
from cerm_reward.judges.queries import InvalidInputError, Query, render_query
from cerm_reward.results import Judgement, TokenUsage
from cerm_reward.serving.ray_pool import JudgePool

logger = logging.getLogger(__name__)
_EXAMPLE_EVERY = 8
"""One sample in this many carries its criteria and critique text to the metrics table."""
_TEXT_LIMIT = 4000
_PREFETCH_MEMORY = 65536
"""Queries a process remembers having prefetched (a step's prompts, many times over)."""


class JudgeClient:
    """A process's handle on the judge pool (either judge kind), built from ``reward.cerm`` settings."""

    def __init__(self, settings: VerlJudgeSettings, cerm: CermConfig, pool: JudgePool) -> None:
        self.settings = settings
        self.cerm = cerm
        self.fallback = cerm.judge.fallback_score
        self.pool = pool
        self._collector = None
        if settings.metrics.enable:  # always the job's own: a detached pool's users each drain their own numbers
            self._collector = (
                ray.remote(MetricsCollector)
                .options(name=f"{pool.config.name}-metrics", namespace=current_job_namespace(), get_if_exists=True, num_cpus=0)
                .remote(settings.metrics.table_rows)
            )
        self._sent = 0
        self._prefetched: OrderedDict[bytes, None] = OrderedDict()

    def prefetch(self, query: Query) -> bool:
        """Start the query's criteria on its home replica now; False when this process already did.

        The n rollouts of a GRPO prompt all pass through here: only the first sends anything.
        A failure is logged and never reaches the rollout (the first real request retries).
        """
        try:
            query_text = render_query(query)
            digest = query_digest(query_text)
            if digest in self._prefetched:
                return False
            self._prefetched[digest] = None
            while len(self._prefetched) > _PREFETCH_MEMORY:
                self._prefetched.popitem(last=False)
            self.pool.prefetch(query_text)
        except Exception as error:  # noqa: BLE001 - a prefetch is an optimisation, never a rollout failure
            logger.warning("cerm: criteria prefetch not sent (%s); the reward call will generate them", error)
            return False
        return True

    async def judge(self, query: Query, response: str, *, validation: bool = False) -> tuple[float, dict[str, Any]]:
        """The reward verl trains on and the sample's ``reward_extra_info`` (fixed keys).

        ``validation`` samples are judged alike and counted apart (``val-cerm/*``, see ``metrics``).
        """
        record = functools.partial(self._record, validation=validation)
        started = time.perf_counter()
        answer, notes = clean_policy_output(response, self.settings.policy_output)
        try:
            query_text = render_query(query)
        except InvalidInputError as error:
            logger.error("cerm: sample not judged, %s; reward %.3g", error, self.fallback)
            latency = time.perf_counter() - started
            record("", self.fallback, INVALID_INPUT, "none", len(answer), latency, TokenUsage(), None)
            return self.fallback, error_extra_info(reward=self.fallback, kind=INVALID_INPUT, latency_s=latency)
        try:
            result = await self.pool.score_group(query_text, [answer])
        except (ray.exceptions.RayError, TimeoutError) as error:
            kind = ENGINE_ERROR if isinstance(error, ray.exceptions.RayTaskError) else POOL_UNREACHABLE
            logger.error("cerm: sample not judged, %s: %s; reward %.3g", kind, _first_line(error), self.fallback)
            latency = time.perf_counter() - started
            record(query_text, self.fallback, kind, "none", len(answer), latency, TokenUsage(), None)
            return self.fallback, error_extra_info(reward=self.fallback, kind=kind, latency_s=latency)
        judgement = result.judgements[0]
        reward = judgement.score if judgement.score is not None else self.fallback
        latency = time.perf_counter() - started
        failure = judgement.failure.value if judgement.failure else ""
        record(query_text, reward, failure, result.criteria_lookup, len(answer), latency, result.usage, judgement)
        extra = extra_info_of(judgement, reward=reward, criteria_lookup=result.criteria_lookup, notes=notes, latency_s=latency)
        return reward, extra

    def _record(
        self,
        query_text: str,
        reward: float,
        failure: str,
        lookup: str,
        answer_chars: int,
        latency: float,
        usage: TokenUsage,
        judgement: Judgement | None,
        *,
        validation: bool,
    ) -> None:
        if self._collector is None:
            return
        record = {
            "group": query_digest(query_text).hex()[:16],
            "reward": reward,
            "failure": failure,
            "criteria_lookup": lookup,
            "answer_chars": answer_chars,
            "latency_s": latency,
            "prompt_tokens": usage.prompt_tokens,
            "completion_tokens": usage.completion_tokens,
            "validation": validation,
        }
        example = None
        if judgement is not None and self._sent % _EXAMPLE_EVERY == 0:
            example = {
                "query": query_text[:_TEXT_LIMIT],
                "criteria": (judgement.criteria or "")[:_TEXT_LIMIT],
                "critique": (judgement.evaluation or "")[:_TEXT_LIMIT],
                "score": "" if judgement.score is None else f"{judgement.score:g}",
                "failure": failure,
            }
        self._sent += 1
        self._collector.record.remote(record, example)


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def _unnamed_model(engine_kind: str) -> str:
    return "(the model the server lists)" if engine_kind == "http" else "(embedded default judge)"


_clients: dict[tuple[str, str | None], JudgeClient] = {}


def client_for(
    settings: VerlJudgeSettings, *, reward_router_address: str | None = None, router_model: str | None = None
) -> JudgeClient:
    """The process's client for these settings, created once: starts the job's pool or attaches to it.

    Start-up is bounded: the pool's placement by ``pool.placement_timeout_s`` and its engines by
    ``pool.startup_timeout_s``; past either, the error names what is missing and the reward
    worker (so the trainer) stops at start-up instead of hanging at its first reward.
    """
    key = (settings.model_dump_json(), reward_router_address)
    if key not in _clients:
        if not ray.is_initialized():
            ray.init(ignore_reinit_error=True)
        servers = verl_reward_server_addresses() if reward_router_address is not None else []
        cerm = settings.cerm_config(
            reward_router_address=reward_router_address, router_model=router_model, reward_servers=servers
        )
        pool = JudgePool.create(cerm, settings.pool_config())
        replicas = pool.ready_within()
        logger.warning(
            "cerm judge pool %r (namespace %r): %d replica(s) on devices %s, %s judge, engine %s %s%s; %s",
            pool.config.name,
            pool.config.namespace,
            len(replicas),
            [replica["devices"] or "none" for replica in replicas],
            cerm.judge.kind,
            cerm.judge_engine.kind,
            router_model or cerm.judge_engine.model or _unnamed_model(cerm.judge_engine.kind),
            f" routed by query over verl's {len(servers)} reward server(s)" if servers else "",
            cerm.judge.describe_failure_policy(),
        )
        _clients[key] = JudgeClient(settings, cerm, pool)
    return _clients[key]


def attached_client(settings: VerlJudgeSettings) -> JudgeClient | None:
    """A client of the job's live pool for prefetching, or ``None`` while there is none.

    Prefetching never creates the pool: the process that scores (a reward worker) knows
    the engine (verl's router or ours) and creates it; a prefetch that built it would
    pick the engine without knowing.
    """
    key = (settings.model_dump_json(), "attached")
    if key not in _clients:
        if not ray.is_initialized():
            return None
        pool_config = settings.pool_config()
        try:
            pool = JudgePool.connect(pool_config.name, pool_config.namespace)
        except LookupError:
            return None
        pool = JudgePool(pool.handles, pool_config)
        _clients[key] = JudgeClient(settings, settings.cerm_config(), pool)
    return _clients[key]
