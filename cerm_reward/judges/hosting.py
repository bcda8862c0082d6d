"""What every host of a judge relies on, and the one place a judge is opened from the config.

The HTTP server, the Ray pool, verl's reward manager, OpenRLHF's endpoint and ``cerm score``
hold a :class:`GroupJudge` and nothing more specific, so ``judge.kind`` (``cerm`` or
``critic_rm``) switches the judge everywhere at once.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

from cerm_reward.config import CermConfig, CriticJudgeConfig, JudgeConfig
from cerm_reward.engines.base import Engine
from cerm_reward.judges.queries import Query
from cerm_reward.results import Criteria, GroupResult
from cerm_reward.stats import JudgeStats


@runtime_checkable
class GroupJudge(Protocol):
    """A judge that scores every response to one query, one judgement each."""

    engine: Engine
    config: JudgeConfig | CriticJudgeConfig
    stats: JudgeStats

    @property
    def model_id(self) -> str: ...

    @property
    def template_version(self) -> str: ...

    async def score_group(self, query: Query, responses: Sequence[str], criteria: Criteria | None = None) -> GroupResult:
        """``criteria``: the query's criteria generated elsewhere (a pool's home replica), if any."""

    async def get_criteria(self, query: Query) -> tuple[Criteria | None, str]:
        """The query's shared criteria and how they were found (``None`` for a judge without any)."""

    def prefetch(self, query: Query) -> Any:
        """Start the work that needs only the query, without waiting."""

    def stats_snapshot(self) -> dict[str, Any]: ...

    async def reset_caches(self) -> bool: ...


async def open_judge(config: CermConfig) -> GroupJudge:
    """The judge ``config.judge.kind`` names, on a freshly opened engine (the caller closes ``judge.engine``)."""
    from cerm_reward.engines import open_engine

    engine = await open_engine(config.judge_engine)
    try:
        return judge_on(engine, config)
    except BaseException:
        await engine.aclose()
        raise


def judge_on(engine: Engine, config: CermConfig) -> GroupJudge:
    """The judge ``config.judge.kind`` names, on an engine the caller already holds."""
    if isinstance(config.judge, CriticJudgeConfig):
        from cerm_reward.critic_rm.judge import CriticRmJudge

        return CriticRmJudge.open(engine, config.judge)
    from cerm_reward.judges.cerm import CermJudge

    return CermJudge(engine, config.judge)
