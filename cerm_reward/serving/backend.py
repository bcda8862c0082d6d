"""What a server judges with: a judge in this process, or the judge pool on Ray.

Both give the same four things, whatever the judge kind: ``score_group``, the judge
configuration (for the failure policy), the model and template names, and a statistics
snapshot in the shape of :meth:`cerm_reward.stats.JudgeStats.snapshot`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any, Protocol

from cerm_reward.config import CermConfig, CermJudgeConfig, CriticJudgeConfig, judge_config_of
from cerm_reward.engines.base import Mortal
from cerm_reward.judges.base import GroupJudge
from cerm_reward.judges.queries import Query
from cerm_reward.judges.registry import open_judge
from cerm_reward.results import GroupResult


class JudgeBackend(Protocol):
    model_id: str
    template_version: str
    config: CermJudgeConfig | CriticJudgeConfig

    async def score_group(self, query: Query, responses: Sequence[str]) -> GroupResult: ...

    def prefetch(self, query: Query) -> Any:
        """Start the query's criteria turn without waiting (the generation to await, when there is one)."""

    def failure(self) -> str | None:
        """Why the judge can no longer answer (its engine died), or None while it can."""

    async def stats(self) -> dict[str, Any]: ...

    async def aclose(self) -> None: ...


class LocalBackend:
    """A judge on an engine opened in this process."""

    def __init__(self, judge: GroupJudge) -> None:
        self.judge = judge
        self.model_id = judge.model_id
        self.template_version = judge.template_version
        self.config = judge.config

    @classmethod
    async def open(cls, config: CermConfig) -> LocalBackend:
        return cls(await open_judge(config))

    async def score_group(self, query: Query, responses: Sequence[str]) -> GroupResult:
        return await self.judge.score_group(query, responses)

    def prefetch(self, query: Query) -> Any:
        return self.judge.prefetch(query)

    def failure(self) -> str | None:
        engine = self.judge.engine
        return engine.failure() if isinstance(engine, Mortal) else None

    async def stats(self) -> dict[str, Any]:
        return self.judge.stats_snapshot()

    async def aclose(self) -> None:
        await self.judge.engine.aclose()


def merge_snapshots(snapshots: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Sum of several judges' statistics (numbers add up, per-kind counters merge)."""
    total: dict[str, Any] = {}
    for snapshot in snapshots:
        for key, value in snapshot.items():
            if isinstance(value, dict):
                merged = Counter(total.get(key, {}))
                merged.update(value)
                total[key] = dict(merged)
            elif isinstance(value, (int, float)) and key != "pid":
                total[key] = total.get(key, 0) + value
    return total


class PoolBackend:
    """The judge pool on Ray, reached by name; the replicas hold the engines."""

    def __init__(self, pool, replica: dict[str, Any]) -> None:
        self.pool = pool
        self.config = judge_config_of(replica["judge"])
        self.template_version = replica["template"]
        self.model_id = replica["model"]

    @classmethod
    async def connect(cls, name: str, address: str | None = None) -> PoolBackend:
        """Attach to the running pool ``name``; its replicas' own configuration governs the judging."""
        import ray

        from cerm_reward.serving.ray_pool import JudgePool

        if not ray.is_initialized():
            ray.init(address=address or "auto", log_to_driver=False)
        pool = JudgePool.connect(name)
        replicas = await pool.ready()
        return cls(pool, replicas[0])

    async def score_group(self, query: Query, responses: Sequence[str]) -> GroupResult:
        return await self.pool.score_group(query, responses)

    def prefetch(self, query: Query) -> None:
        self.pool.prefetch(query)

    def failure(self) -> str | None:
        return None  # the pool's replicas are supervised by Ray, not by this server

    async def stats(self) -> dict[str, Any]:
        return merge_snapshots(await self.pool.stats())

    async def aclose(self) -> None:
        return None
