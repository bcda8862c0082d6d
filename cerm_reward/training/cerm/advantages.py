"""Advantages grouped by criteria / chosen / rejected, as CE-RM's paper states (docs/method.md §1.2).

The 20 trajectories of a pair are not one exchangeable group: a criteria text, an evaluation
of the chosen response and an evaluation of the rejected response answer different prompts
and earn rewards on different scales. Each of the three groups is normalised on its own,
(r - mean) / (std + eps), with verl's GRPO conventions so that this code and
``verl.trainer.ppo.core_algos.compute_grpo_outcome_advantage`` agree to the last digit:
the sample (n - 1) standard deviation, and a group of one trajectory has mean 0 and std 1.
A group whose rewards are all equal gets advantage 0 everywhere: it carries no preference.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Sequence
from dataclasses import dataclass

from cerm_reward.training.cerm.rewards import PairRewards
from cerm_reward.training.cerm.settings import AdvantageSettings


class Branch(str, enum.Enum):
    """The three advantage groups of a pair; also the suffix of the group id given to verl."""

    CRITERIA = "criteria"
    CHOSEN = "chosen"
    REJECTED = "rejected"


def group_id(pair_id: str, branch: Branch) -> str:
    """The id verl's GRPO groups by: one group per (pair, branch)."""
    return f"{pair_id}/{branch.value}"


def normalise_group(rewards: Sequence[float], settings: AdvantageSettings) -> list[float]:
    """GRPO's outcome advantage for one group, in verl's conventions (see the module docstring)."""
    count = len(rewards)
    if count == 0:
        return []
    if count == 1:
        mean, std = 0.0, 1.0
    else:
        mean = sum(rewards) / count
        std = math.sqrt(sum((r - mean) ** 2 for r in rewards) / (count - 1))
    if not settings.norm_by_std:
        return [r - mean for r in rewards]
    return [(r - mean) / (std + settings.epsilon) for r in rewards]


@dataclass(frozen=True)
class PairAdvantages:
    """Advantages shaped like :class:`PairRewards`: ``chosen[i][j]`` belongs to e+_ij."""

    criteria: list[float]
    chosen: list[list[float]]
    rejected: list[list[float]]


def _reshape(flat: list[float], like: Sequence[Sequence[float]]) -> list[list[float]]:
    out, start = [], 0
    for row in like:
        out.append(flat[start : start + len(row)])
        start += len(row)
    return out


def pair_advantages(rewards: PairRewards, settings: AdvantageSettings) -> PairAdvantages:
    """Normalise the criteria, the chosen evaluations and the rejected evaluations each within its group."""
    chosen = normalise_group([r for row in rewards.chosen for r in row], settings)
    rejected = normalise_group([r for row in rewards.rejected for r in row], settings)
    return PairAdvantages(
        criteria=normalise_group(rewards.criteria, settings),
        chosen=_reshape(chosen, rewards.chosen),
        rejected=_reshape(rejected, rewards.rejected),
    )
