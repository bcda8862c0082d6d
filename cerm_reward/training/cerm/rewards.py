"""Rewards of CE-RM's two-stage rollout for one preference pair (docs/method.md §1.2).

Under criteria c_i the judge wrote evaluations e+_ij of the chosen and e-_ik of the rejected
response, each parsed to a score or to a failure. Every (j, k) under the same criteria is one
comparison, right when s(e+_ij) > s(e-_ik):

* an evaluation's reward is the mean correctness of its comparisons (the chosen evaluation
  against the rejected ones under the same criteria, and vice versa);
* a criteria's reward is the mean correctness of all its comparisons, so criteria that let the
  judge separate the pair are reinforced.

Ties count ``tie_reward`` (0 by default: a tie ranks nothing right). An evaluation without a
score gets ``failure_reward`` (the minimum), never a made-up score. Its comparisons are dropped
from its *partners'* means, because a valid evaluation should not be punished or rewarded for
the other side's failure; a valid evaluation left with no valid partner gets ``tie_reward``
(its correctness is unknown). For the criteria reward a failed comparison counts as wrong: the
criteria led to an evaluation that could not be used. A criteria turn that failed itself (no
criteria block, cut at its budget) gets ``failure_reward`` too.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from cerm_reward.training.cerm.settings import RewardSettings

Score = float | None
"""A parsed overall score, or ``None`` when the evaluation failed."""


@dataclass(frozen=True)
class PairRewards:
    """Rewards of one pair's trajectories, shaped like the rollout: ``chosen[i][j]`` is e+_ij."""

    criteria: list[float]
    chosen: list[list[float]]
    rejected: list[list[float]]
    comparisons: int
    """Comparisons between two valid evaluations."""
    correct: int
    ties: int
    failed_evaluations: int
    failed_criteria: int

    @property
    def accuracy(self) -> float:
        """Share of valid comparisons ranked right: the judge's training accuracy on this pair."""
        return self.correct / self.comparisons if self.comparisons else 0.0


def _outcome(chosen: Score, rejected: Score, tie_reward: float) -> float | None:
    if chosen is None or rejected is None:
        return None
    if chosen == rejected:
        return tie_reward
    return 1.0 if chosen > rejected else 0.0


def _mean_or(values: Sequence[float | None], empty: float) -> float:
    valid = [v for v in values if v is not None]
    return sum(valid) / len(valid) if valid else empty


def pair_rewards(
    chosen_scores: Sequence[Sequence[Score]],
    rejected_scores: Sequence[Sequence[Score]],
    settings: RewardSettings,
    criteria_failed: Sequence[bool] | None = None,
) -> PairRewards:
    """Rewards for K_c criteria, their chosen evaluations and their rejected evaluations.

    ``chosen_scores[i]`` and ``rejected_scores[i]`` hold the scores of the evaluations written
    under criteria i; ``criteria_failed[i]`` marks a criteria turn that failed.
    """
    if len(chosen_scores) != len(rejected_scores):
        raise ValueError(f"{len(chosen_scores)} criteria with chosen scores, {len(rejected_scores)} with rejected")
    criteria_failed = list(criteria_failed) if criteria_failed is not None else [False] * len(chosen_scores)
    if len(criteria_failed) != len(chosen_scores):
        raise ValueError("criteria_failed needs one flag per criteria")
    tie, failure = settings.tie_reward, settings.failure_reward
    criteria_rewards: list[float] = []
    chosen_rewards: list[list[float]] = []
    rejected_rewards: list[list[float]] = []
    comparisons = correct = ties = failed = 0
    for pluses, minuses, bad_criteria in zip(chosen_scores, rejected_scores, criteria_failed, strict=True):
        table = [[_outcome(plus, minus, tie) for minus in minuses] for plus in pluses]
        chosen_rewards.append([failure if plus is None else _mean_or(row, tie) for plus, row in zip(pluses, table, strict=True)])
        rejected_rewards.append(
            [failure if minus is None else _mean_or([row[k] for row in table], tie) for k, minus in enumerate(minuses)]
        )
        cells = [cell for row in table for cell in row]
        criteria_rewards.append(failure if bad_criteria else _mean_or([0.0 if c is None else c for c in cells], failure))
        valid = [cell for cell in cells if cell is not None]
        comparisons += len(valid)
        correct += sum(1 for plus in pluses for minus in minuses if plus is not None and minus is not None and plus > minus)
        ties += sum(1 for plus in pluses for minus in minuses if plus is not None and plus == minus)
        failed += sum(score is None for score in (*pluses, *minuses))
    return PairRewards(
        criteria=criteria_rewards,
        chosen=chosen_rewards,
        rejected=rejected_rewards,
        comparisons=comparisons,
        correct=correct,
        ties=ties,
        failed_evaluations=failed,
        failed_criteria=sum(criteria_failed),
    )
