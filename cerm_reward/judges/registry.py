"""The judge kinds, and the one place a judge is opened from the configuration.

Each ``judge.kind`` is one :class:`JudgeKind` entry: its settings class (from
:mod:`cerm_reward.config`, the one source of defaults), how a judge of that kind is built on an
engine, and which shared CLI flags mean which of its keys. Nothing else in the package branches
on the kind; a third judge is one folder under ``judges/`` plus one entry here
(docs/development.md shows how).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from cerm_reward.config import JUDGE_CONFIGS, CermConfig, CermJudgeConfig, CriticJudgeConfig, JudgeSection
from cerm_reward.engines.base import Engine
from cerm_reward.errors import ConfigError
from cerm_reward.judges.base import GroupJudge
from cerm_reward.judges.cerm.judge import CermJudge
from cerm_reward.judges.critic_rm.judge import CriticRmJudge


@dataclass(frozen=True)
class JudgeKind:
    """One judge type: its settings, how it opens on an engine, and what the shared flags mean for it."""

    name: str
    config_class: type[JudgeSection]
    open_on: Callable[[Engine, JudgeSection], GroupJudge]
    """Build the judge on an engine the caller holds (loading whatever else it needs)."""
    flags: Mapping[str, str]
    """Shared CLI parameter name -> the ``judge.*`` key it sets for this kind."""


def _open_cerm(engine: Engine, config: JudgeSection) -> GroupJudge:
    assert isinstance(config, CermJudgeConfig)
    return CermJudge(engine, config)


def _open_critic_rm(engine: Engine, config: JudgeSection) -> GroupJudge:
    assert isinstance(config, CriticJudgeConfig)
    return CriticRmJudge.open(engine, config)


JUDGE_KINDS: dict[str, JudgeKind] = {
    "cerm": JudgeKind(
        "cerm",
        CermJudgeConfig,
        _open_cerm,
        {
            "criteria_max_tokens": "judge.criteria.max_tokens",
            "eval_max_tokens": "judge.evaluation.max_tokens",
            "samples": "judge.samples_per_response",
            "repair": "judge.failure.repair",
            "on_failure": "judge.failure.on_failure",
        },
    ),
    "critic_rm": JudgeKind(
        "critic_rm",
        CriticJudgeConfig,
        _open_critic_rm,
        {
            "checkpoint": "judge.checkpoint",
            "eval_max_tokens": "judge.critique.max_tokens",
            "samples": "judge.critiques_per_response",
        },
    ),
}
assert set(JUDGE_KINDS) == set(JUDGE_CONFIGS), "every judge kind needs a settings class and a registry entry"


def judge_kind(name: str) -> JudgeKind:
    """The registry entry of ``name``; an unknown kind is a :class:`ConfigError` listing the known ones."""
    try:
        return JUDGE_KINDS[name]
    except KeyError:
        raise ConfigError(f"unknown judge kind {name!r}; expected one of {', '.join(JUDGE_KINDS)}") from None


def judge_on(engine: Engine, config: CermConfig) -> GroupJudge:
    """The judge ``config.judge.kind`` names, on an engine the caller already holds."""
    return judge_kind(config.judge.kind).open_on(engine, config.judge)


async def open_judge(config: CermConfig) -> GroupJudge:
    """The judge ``config.judge.kind`` names, on a freshly opened engine (the caller closes ``judge.engine``)."""
    from cerm_reward.engines import open_engine

    engine = await open_engine(config.judge_engine)
    try:
        return judge_on(engine, config)
    except BaseException:
        await engine.aclose()
        raise
