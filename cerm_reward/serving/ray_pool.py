"""The judge pool on Ray: named replicas, each hosting an engine and a judge.

Any process of a job (the driver, verl's ``reward_loop_worker_*`` actors, an HTTP server)
reaches the same replicas by name in the pool's namespace. The first process to create a
pool reserves its placement (one bundle per replica, with a deadline: see ``placement``)
and starts the replicas; every later :meth:`JudgePool.create` with the same settings
attaches to them, and one with other settings is refused with both named: a silent attach
would judge with the first creator's engine and template.

Routing keeps a query on its *home* replica (a stable hash of the normalised query), so
its group's evaluation prompts share one warm prefix cache and its criteria are generated
once, by one replica's single-flight cache, whichever process asks. When the home replica
is overloaded the group goes to the least-loaded replica, which receives the criteria
from the home replica instead of generating them again.

Replicas restart when their process dies (``max_restarts``), and Ray re-submits the calls
that were in flight (``max_task_retries``): a judge call has no side effect, so every
sample still gets exactly one result. Every wait is bounded: placement and start-up by
their deadlines, each call by ``call_timeout_s``.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
import uuid
from collections.abc import Sequence
from typing import Any, Literal

import ray
from pydantic import Field
from ray.util.placement_group import PlacementGroup, remove_placement_group
from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

from cerm_reward.config import CermConfig
from cerm_reward.criteria_cache import query_digest
from cerm_reward.errors import CermError, ConfigError
from cerm_reward.frozen import FrozenModel
from cerm_reward.judges.queries import Query, render_query
from cerm_reward.results import Criteria, GroupResult
from cerm_reward.serving import placement

logger = logging.getLogger(__name__)
NAMESPACE = "cerm_reward"
_ATTACH_POLL_S = 0.2


class PoolConfig(FrozenModel):
    """Shape and placement of the pool (the judge's own settings live in :class:`CermConfig`)."""

    name: str = "default"
    """Replicas are the actors ``<name>-0`` .. ``<name>-<replicas-1>`` in ``namespace``."""
    namespace: str = NAMESPACE
    """Ray namespace of the replicas: one per job keeps two jobs' pools apart (verl derives it from the job)."""
    replicas: int = Field(default=1, ge=1)
    num_cpus: float = Field(default=1.0, ge=0)
    num_gpus: float = Field(default=0.0, ge=0)
    """GPUs per replica: at least the engine's tensor_parallel_size for an in-process vLLM engine on GPUs."""
    resources: dict[str, float] = Field(default_factory=dict)
    """Custom Ray resources per replica, e.g. ``{"cerm_judge": 1}`` to pin the pool to nodes started with
    ``ray start --resources '{"cerm_judge": 8}'``."""
    placement: Literal["spread", "pack"] = "spread"
    """``spread`` places replicas on different nodes where it can (placement strategy SPREAD, else PACK)."""
    max_restarts: int = -1
    """Restarts of a dead replica (-1 = always)."""
    overload_factor: float = Field(default=2.0, ge=1.0)
    """Leave the home replica when its calls in flight exceed factor x (least loaded + 1)."""
    detached: bool = False
    """Outlive the creating job (a long-running judge cluster); stop it with :meth:`JudgePool.shutdown`."""
    placement_timeout_s: float = Field(default=300.0, gt=0)
    """Deadline for every replica's bundle to be placed (then the error names the missing resources)."""
    startup_timeout_s: float = Field(default=1800.0, gt=0)
    """Deadline for every replica's engine to be up in :meth:`JudgePool.ready` (model download and load)."""
    call_timeout_s: float = Field(default=3600.0, gt=0)
    """Deadline for one ``score_group`` call, resamples and a replica restart included."""


SHAPE_KEYS = frozenset({"replicas", "num_cpus", "num_gpus", "resources", "placement", "max_restarts", "detached"})
"""The pool settings a live pool was built with (timeouts and routing are each client's own)."""


class PoolConflictError(ConfigError):
    """A pool of this name runs with other settings than this creator's."""


class PoolStartError(CermError):
    """The pool did not come up in time: replicas not created or engines not ready."""


def pool_spec(judge: CermConfig, pool: PoolConfig) -> dict[str, Any]:
    """What must match between a live pool and a creator that attaches to it (the replica class may
    differ: a subclass only adds methods)."""
    return {"judge": judge.model_dump(mode="json"), "pool": pool.model_dump(mode="json", include=SHAPE_KEYS)}


def spec_difference(live: dict[str, Any], ours: dict[str, Any], prefix: str = "") -> list[str]:
    """``key: live -> ours`` for every leaf where the two specs differ."""
    lines = []
    for key in sorted(set(live) | set(ours)):
        a, b = live.get(key), ours.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            lines.extend(spec_difference(a, b, f"{prefix}{key}."))
        elif a != b:
            lines.append(f"{prefix}{key}: {a!r} (live) vs {b!r} (this creator)")
    return lines


def home_replica(query_text: str, replicas: int) -> int:
    """The replica that owns a query: a hash that is the same in every process (unlike ``hash``)."""
    return int.from_bytes(query_digest(query_text)[:8], "big") % replicas


def choose_replica(home: int, in_flight: Sequence[int], overload_factor: float) -> int:
    """The home replica unless it is overloaded, then the least loaded one."""
    least = min(range(len(in_flight)), key=lambda index: (in_flight[index], index))
    if in_flight[home] > overload_factor * (in_flight[least] + 1):
        return least
    return home


class PoolRegistry:
    """Actor ``<name>-spec``: the settings the pool was created with and which creator won.

    It asks for no resources, so it is placed at once even when the replicas cannot be,
    and ``get_if_exists`` on it decides atomically which of several racing creators
    reserves the placement; the others compare their settings with the winner's.
    """

    def __init__(self, spec: dict[str, Any], token: str) -> None:
        self._spec = spec
        self._token = token
        self._group: PlacementGroup | None = None

    def claim(self) -> tuple[dict[str, Any], str]:
        return self._spec, self._token

    def hold(self, group: PlacementGroup | None) -> None:
        """Keep the pool's reservation, so whoever stops the pool (any job) can release it."""
        self._group = group

    def group(self) -> PlacementGroup | None:
        return self._group


class JudgeReplica:
    """One engine + judge of any kind, started lazily inside its actor (so a restarted actor starts afresh)."""

    def __init__(self, config: dict[str, Any]) -> None:
        # The engine sees exactly the GPUs Ray assigned (none for a zero-GPU replica, not all of them).
        os.environ["CUDA_VISIBLE_DEVICES"] = placement.visible_devices()
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
            "devices": os.environ["CUDA_VISIBLE_DEVICES"],
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

    def __init__(self, handles: list[Any], config: PoolConfig, registry: Any = None) -> None:
        self.handles = handles
        self.config = config
        self._registry = registry  # held: Ray stops a non-detached actor, named or not, when its last handle goes
        self._in_flight = [0] * len(handles)

    @classmethod
    def create(cls, judge: CermConfig, pool: PoolConfig | None = None, replica: type[JudgeReplica] = JudgeReplica) -> JudgePool:
        """Start the pool, or attach to the live one if its settings are these (the same call from any process).

        Raises :class:`PoolConflictError` when the live pool has other settings,
        :class:`~cerm_reward.serving.placement.PlacementTimeoutError` when its replicas cannot be placed
        within ``placement_timeout_s``, and a ``ConfigError`` for a vLLM engine without its GPUs.
        ``replica`` may be a subclass that adds methods (``cerm bench`` adds a raw-engine baseline).
        """
        pool = pool or PoolConfig()
        placement.check_engine_devices(judge, pool.num_gpus, placement.cluster_gpus())
        spec, token = pool_spec(judge, pool), uuid.uuid4().hex
        lifetime = {"lifetime": "detached"} if pool.detached else {}
        registry = (
            ray.remote(PoolRegistry)
            .options(name=f"{pool.name}-spec", namespace=pool.namespace, get_if_exists=True, num_cpus=0, **lifetime)
            .remote(spec, token)
        )
        live, owner = ray.get(registry.claim.remote(), timeout=pool.placement_timeout_s)
        if live != spec:
            raise PoolConflictError(
                f"judge pool {pool.name!r} (Ray namespace {pool.namespace!r}) already runs with other settings; "
                "give this one another pool.name, or stop the live pool. Differences: " + "; ".join(spec_difference(live, spec))
            )
        if owner != token:
            return cls(cls._attach(pool), pool, registry)
        try:
            return cls(cls._start(judge, pool, replica, registry), pool, registry)
        except BaseException:
            ray.kill(registry, no_restart=True)  # the name must not claim a pool that never came up
            raise

    @classmethod
    def _start(cls, judge: CermConfig, pool: PoolConfig, replica: type[JudgeReplica], registry: Any) -> list[Any]:
        bundle = placement.bundle_of(pool.num_cpus, pool.num_gpus, pool.resources)
        strategy = "SPREAD" if pool.placement == "spread" else "PACK"
        group = None
        if bundle:
            group = placement.reserve(
                f"{pool.namespace}/{pool.name}", bundle, pool.replicas, strategy, pool.placement_timeout_s, detached=pool.detached
            )
            ray.get(registry.hold.remote(group), timeout=pool.placement_timeout_s)
        options: dict[str, Any] = {
            "namespace": pool.namespace,
            "max_restarts": pool.max_restarts,
            "max_task_retries": -1,
            "max_concurrency": 4096,
            "num_cpus": pool.num_cpus,
            "num_gpus": pool.num_gpus,
            "resources": dict(pool.resources),
        }
        if pool.detached:
            options["lifetime"] = "detached"
        config = judge.model_dump(mode="json")
        remote = ray.remote(replica)
        handles = []
        for index in range(pool.replicas):
            where = PlacementGroupSchedulingStrategy(group, placement_group_bundle_index=index) if group else strategy
            handles.append(remote.options(name=f"{pool.name}-{index}", scheduling_strategy=where, **options).remote(config))
        return handles

    @classmethod
    def _attach(cls, pool: PoolConfig) -> list[Any]:
        """The live pool's replicas, waiting (boundedly) while their creator still reserves their placement."""
        deadline = time.monotonic() + pool.placement_timeout_s
        handles: list[Any] = []
        while len(handles) < pool.replicas:
            try:
                handles.append(ray.get_actor(f"{pool.name}-{len(handles)}", namespace=pool.namespace))
            except ValueError:
                if time.monotonic() > deadline:
                    raise PoolStartError(
                        f"judge pool {pool.name!r}: replica {len(handles)} not created within {pool.placement_timeout_s:g} s "
                        "by the process that created the pool (its placement may be waiting for resources)"
                    ) from None
                time.sleep(_ATTACH_POLL_S)
        return handles

    @staticmethod
    def live_settings(name: str, namespace: str = NAMESPACE) -> dict[str, Any]:
        """The judge config (``judge``) and shape (``pool``) a running pool was created with."""
        registry = ray.get_actor(f"{name}-spec", namespace=namespace)
        spec, _ = ray.get(registry.claim.remote(), timeout=60)
        return spec

    @classmethod
    def connect(cls, name: str = "default", namespace: str = NAMESPACE) -> JudgePool:
        """Attach to a running pool by name (e.g. from a process that does not know its config)."""
        handles = []
        while True:
            try:
                handles.append(ray.get_actor(f"{name}-{len(handles)}", namespace=namespace))
            except ValueError:
                break
        if not handles:
            raise LookupError(f"no judge pool named {name!r} in Ray namespace {namespace!r}")
        return cls(handles, PoolConfig(name=name, namespace=namespace, replicas=len(handles)))

    def ready_within(self, timeout_s: float | None = None) -> list[dict[str, Any]]:
        """Every replica's engine up within ``timeout_s`` (default ``startup_timeout_s``), else :class:`PoolStartError`.

        Returns model, template, judge config, pid, node and visible devices of each replica.
        """
        timeout_s = self.config.startup_timeout_s if timeout_s is None else timeout_s
        refs = [handle.ready.remote() for handle in self.handles]
        _, pending = ray.wait(refs, num_returns=len(refs), timeout=timeout_s)
        if pending:
            late = [f"{self.config.name}-{refs.index(ref)}" for ref in pending]
            for ref in pending:
                ray.cancel(ref)
            raise PoolStartError(f"judge pool {self.config.name!r}: replicas {late} not ready within {timeout_s:g} s")
        return ray.get(refs)

    async def ready(self, timeout_s: float | None = None) -> list[dict[str, Any]]:
        """:meth:`ready_within`, without blocking the event loop."""
        return await asyncio.get_running_loop().run_in_executor(None, self.ready_within, timeout_s)

    async def score_group(self, query: Query, responses: Sequence[str]) -> GroupResult:
        """Score a group on its home replica (or the least loaded one, with the home's criteria).

        Raises ``TimeoutError`` after ``call_timeout_s`` and Ray's errors as they come: the
        caller decides what an unreachable pool means for its sample.
        """
        query_text = render_query(query)
        home = home_replica(query_text, len(self.handles))
        target = choose_replica(home, self._in_flight, self.config.overload_factor)
        criteria = None
        if target != home:
            try:
                criteria = await self._call(self.handles[home].get_criteria.remote(query_text))
            except (ray.exceptions.RayError, TimeoutError) as error:
                logger.warning("criteria from home replica %d failed (%s); scoring there instead", home, error)
                target = home
        self._in_flight[target] += 1
        try:
            return await self._call(self.handles[target].score_group.remote(query_text, list(responses), criteria))
        finally:
            self._in_flight[target] -= 1

    async def _call(self, ref: Any) -> Any:
        try:
            return await asyncio.wait_for(ref, timeout=self.config.call_timeout_s)
        except TimeoutError:
            ray.cancel(ref)
            raise

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
        """Stop the replicas, the registry and the placement reservation."""
        for handle in self.handles:
            ray.kill(handle, no_restart=True)
        try:
            registry = ray.get_actor(f"{self.config.name}-spec", namespace=self.config.namespace)
        except ValueError:
            return  # already stopped
        group = ray.get(registry.group.remote(), timeout=self.config.call_timeout_s)
        if group is not None:
            remove_placement_group(group)
        ray.kill(registry, no_restart=True)
