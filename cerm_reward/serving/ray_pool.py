"""The judge pool on Ray: named replicas, each hosting an engine and a judge.

Any process of a job (the driver, verl's ``reward_loop_worker_*`` actors, an HTTP server)
reaches the same replicas by name in the ``cerm_reward`` namespace; creating the pool is
idempotent (``get_if_exists``), so every process may call :meth:`JudgePool.create`.

Routing keeps a query on its *home* replica (a stable hash of the normalised query), so
its group's evaluation prompts share one warm prefix cache and its criteria are generated
once, by one replica's single-flight cache, whichever process asks. When the home replica
is overloaded the group goes to the least-loaded replica, which receives the criteria
from the home replica instead of generating them again.

Replicas restart when their process dies (``max_restarts``), and Ray re-submits the calls
that were in flight (``max_task_retries``): a judge call has no side effect, so every
sample still gets exactly one result.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Sequence
from typing import Any, Literal

import ray
from pydantic import Field

from cerm_reward.config import CermConfig
from cerm_reward.criteria_cache import query_digest
from cerm_reward.frozen import FrozenModel
from cerm_reward.judges.queries import Query, render_query
from cerm_reward.results import Criteria, GroupResult

logger = logging.getLogger(__name__)
NAMESPACE = "cerm_reward"


class PoolConfig(FrozenModel):
    """Shape and placement of the pool (the judge's own settings live in :class:`CermConfig`)."""

    name: str = "default"
    """Replicas are the actors ``<name>-0`` .. ``<name>-<replicas-1>`` in the ``cerm_reward`` namespace."""
    replicas: int = Field(default=1, ge=1)
    num_cpus: float = Field(default=1.0, ge=0)
    num_gpus: float = Field(default=0.0, ge=0)
    """GPUs per replica: set it to the engine's tensor_parallel_size on a GPU cluster."""
    resources: dict[str, float] = Field(default_factory=dict)
    """Custom Ray resources per replica, e.g. ``{"cerm_judge": 1}`` to pin the pool to nodes started with
    ``ray start --resources '{"cerm_judge": 8}'`` so it never takes the GPUs of the trainer's resource pools."""
    placement: Literal["spread", "pack"] = "spread"
    """``spread`` places replicas on different nodes where it can (Ray's SPREAD strategy)."""
    max_restarts: int = -1
    """Restarts of a dead replica (-1 = always)."""
    overload_factor: float = Field(default=2.0, ge=1.0)
    """Leave the home replica when its calls in flight exceed factor x (least loaded + 1)."""
    detached: bool = False
    """Outlive the creating job (a long-running judge cluster); stop it with :meth:`JudgePool.shutdown`."""


def home_replica(query_text: str, replicas: int) -> int:
    """The replica that owns a query: a hash that is the same in every process (unlike ``hash``)."""
    return int.from_bytes(query_digest(query_text)[:8], "big") % replicas


def choose_replica(home: int, in_flight: Sequence[int], overload_factor: float) -> int:
    """The home replica unless it is overloaded, then the least loaded one."""
    least = min(range(len(in_flight)), key=lambda index: (in_flight[index], index))
    if in_flight[home] > overload_factor * (in_flight[least] + 1):
        return least
    return home


class JudgeReplica:
    """One engine + judge of any kind, started lazily inside its actor (so a restarted actor starts afresh)."""

    def __init__(self, config: dict[str, Any]) -> None:
        self._config = CermConfig.model_validate(config)
        self._judge = None
        self._starting = asyncio.Lock()

    async def _ensure_judge(self):
        async with self._starting:
            if self._judge is None:
                from cerm_reward.judges.registry import open_judge

                self._judge = await open_judge(self._config)
        return self._judge

    async def ready(self) -> dict[str, Any]:
        judge = await self._ensure_judge()
        return {
            "model": judge.model_id,
            "template": judge.template_version,
            "judge": judge.config.model_dump(mode="json"),
            "pid": os.getpid(),
            "node": ray.get_runtime_context().get_node_id(),
        }

    async def get_criteria(self, query: Query) -> Criteria | None:
        """The query's criteria from its home replica (``None`` for a judge that writes none)."""
        criteria, _ = await (await self._ensure_judge()).get_criteria(query)
        return criteria

    async def score_group(self, query: Query, responses: list[str], criteria: Criteria | None = None) -> GroupResult:
        return await (await self._ensure_judge()).score_group(query, responses, criteria)

    async def prefetch(self, query: Query) -> None:
        (await self._ensure_judge()).prefetch(query)

    async def reset_caches(self) -> bool:
        return await (await self._ensure_judge()).reset_caches()

    async def stats(self) -> dict[str, Any]:
        judge = await self._ensure_judge()
        return {"pid": os.getpid(), **judge.stats_snapshot()}


class JudgePool:
    """A client of the pool; cheap to create in every process that needs the judge."""

    def __init__(self, handles: list[Any], config: PoolConfig) -> None:
        self.handles = handles
        self.config = config
        self._in_flight = [0] * len(handles)

    @classmethod
    def create(cls, judge: CermConfig, pool: PoolConfig | None = None, replica: type[JudgeReplica] = JudgeReplica) -> JudgePool:
        """Create the replicas, or attach to them if they exist (the same call from any process).

        ``replica`` may be a subclass that adds methods (``cerm bench`` adds a raw-engine baseline).
        """
        pool = pool or PoolConfig()
        options: dict[str, Any] = {
            "namespace": NAMESPACE,
            "get_if_exists": True,
            "max_restarts": pool.max_restarts,
            "max_task_retries": -1,
            "max_concurrency": 4096,
            "num_cpus": pool.num_cpus,
            "num_gpus": pool.num_gpus,
            "resources": dict(pool.resources),
            "scheduling_strategy": "SPREAD" if pool.placement == "spread" else "DEFAULT",
        }
        if pool.detached:
            options["lifetime"] = "detached"
        config = judge.model_dump(mode="json")
        remote = ray.remote(replica)
        handles = [remote.options(name=f"{pool.name}-{i}", **options).remote(config) for i in range(pool.replicas)]
        return cls(handles, pool)

    @classmethod
    def connect(cls, name: str = "default") -> JudgePool:
        """Attach to a running pool by name (e.g. from a process that does not know its config)."""
        handles = []
        while True:
            try:
                handles.append(ray.get_actor(f"{name}-{len(handles)}", namespace=NAMESPACE))
            except ValueError:
                break
        if not handles:
            raise LookupError(f"no judge pool named {name!r} in Ray namespace {NAMESPACE!r}")
        return cls(handles, PoolConfig(name=name, replicas=len(handles)))

    async def ready(self) -> list[dict[str, Any]]:
        """Wait until every replica's engine is up; returns model, template, judge config, pid and node of each."""
        return list(await asyncio.gather(*(handle.ready.remote() for handle in self.handles)))

    async def score_group(self, query: Query, responses: Sequence[str]) -> GroupResult:
        """Score a group on its home replica (or the least loaded one, with the home's criteria)."""
        query_text = render_query(query)
        home = home_replica(query_text, len(self.handles))
        target = choose_replica(home, self._in_flight, self.config.overload_factor)
        criteria = None
        if target != home:
            try:
                criteria = await self.handles[home].get_criteria.remote(query_text)
            except ray.exceptions.RayError as error:
                logger.warning("criteria from home replica %d failed (%s); scoring there instead", home, error)
                target = home
        self._in_flight[target] += 1
        try:
            return await self.handles[target].score_group.remote(query_text, list(responses), criteria)
        finally:
            self._in_flight[target] -= 1

    def prefetch(self, query: Query) -> None:
        """Start the query's criteria turn on its home replica without waiting (a failure there is retried later)."""
        query_text = render_query(query)
        self.handles[home_replica(query_text, len(self.handles))].prefetch.remote(query_text)

    async def reset_caches(self) -> bool:
        """Cold caches on every replica (criteria and engine prefix cache); True when every engine's was emptied."""
        return all(await asyncio.gather(*(handle.reset_caches.remote() for handle in self.handles)))

    async def stats(self) -> list[dict[str, Any]]:
        return list(await asyncio.gather(*(handle.stats.remote() for handle in self.handles)))

    def shutdown(self) -> None:
        for handle in self.handles:
            ray.kill(handle, no_restart=True)
