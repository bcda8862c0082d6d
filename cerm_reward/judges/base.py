"""What every host of a judge relies on: the :class:`GroupJudge` protocol.

The HTTP server, the Ray pool, verl's reward manager, OpenRLHF's endpoint, ``cerm score`` and
``cerm eval`` hold a :class:`GroupJudge` and nothing more specific, so ``judge.kind`` switches
the judge everywhere at once. :mod:`cerm_reward.judges.registry` opens one from a configuration.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

from cerm_reward.config import JudgeSection
from cerm_reward.engines.base import Engine
from cerm_reward.judges.queries import Query
from cerm_reward.results import Criteria, GroupResult
from cerm_reward.stats import JudgeStats


@runtime_checkable
class GroupJudge(Protocol):
    """A judge that scores every response to one query, one judgement each."""

    engine: Engine
    stats: JudgeStats

    @property
    def config(self) -> JudgeSection:
        """The judge's own ``judge`` section (read-only: hosts read its failure policy and scores)."""

    @property
    def model_id(self) -> str: ...

    @property
    def template_version(self) -> str: ...

    @property
    def identity(self) -> str:
        """Names the judge and everything that changes its scores; keys the evaluation score cache."""

    async def score_group(self, query: Query, responses: Sequence[str], criteria: Criteria | None = None) -> GroupResult:
        """``criteria``: the query's criteria generated elsewhere (a pool's home replica), if any."""

    async def get_criteria(self, query: Query) -> tuple[Criteria | None, str]:
        """The query's shared criteria and how they were found (``None`` for a judge without any)."""

    def prefetch(self, query: Query) -> Any:
        """Start the work that needs only the query, without waiting."""

    def stats_snapshot(self) -> dict[str, Any]: ...

    async def reset_caches(self) -> bool: ...


def settings_digest(settings: dict[str, Any]) -> str:
    """A short stable digest of a settings mapping, for judge identities."""
    text = json.dumps(settings, sort_keys=True, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:12]
