"""The joint objective of Critic-RM: Bradley-Terry on the head + lm_weight(t) x critique NLL.

Pure functions, so each piece can be checked against a hand computation:

* ``bradley_terry_loss``: mean of ``-log sigmoid(r_chosen - r_rejected)`` over pairs;
* ``critique_nll``: mean next-token negative log-likelihood over the critique tokens only
  (labels are ``-100`` elsewhere, and everywhere in a sequence that must not train the LM);
  ``next_token_targets`` picks those positions, so the vocabulary projection runs on them alone;
* ``lm_weight_at``: the critique-loss weight at training progress t in [0, 1], constant or
  decaying (linear, cosine) from ``start`` to ``floor``: the critique loss leads early, when the
  model must learn to write critiques, and the reward loss dominates at the end.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from cerm_reward.training.critic_rm.config import LmWeightSchedule


def training_progress(step: int, total_steps: int) -> float:
    """t = step / total_steps, clamped to [0, 1] (step 0 is the first update)."""
    if total_steps <= 0:
        return 0.0
    return min(1.0, max(0.0, step / total_steps))


def lm_weight_at(schedule: LmWeightSchedule, progress: float) -> float:
    """lm_weight(t): ``start`` for constant; linear or half-cosine decay from ``start`` to ``floor``."""
    t = min(1.0, max(0.0, progress))
    if schedule.kind == "constant":
        return schedule.start
    if schedule.kind == "linear":
        return schedule.start + (schedule.floor - schedule.start) * t
    return schedule.floor + (schedule.start - schedule.floor) * 0.5 * (1.0 + math.cos(math.pi * t))


def bradley_terry_loss(chosen_rewards: torch.Tensor, rejected_rewards: torch.Tensor) -> torch.Tensor:
    return -F.logsigmoid(chosen_rewards - rejected_rewards).mean()


def critique_nll(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean NLL of ``targets`` (N,) under ``logits`` (N, vocab); zero, graph kept, when N = 0."""
    if targets.numel() == 0:
        return logits.sum() * 0.0  # keeps the graph (and DDP's gradient hooks) intact
    return F.cross_entropy(logits.float(), targets)


def joint_loss(bt_loss: torch.Tensor, nll: torch.Tensor, lm_weight: float) -> torch.Tensor:
    return bt_loss + lm_weight * nll


def pairwise_accuracy(chosen_rewards: torch.Tensor, rejected_rewards: torch.Tensor) -> float:
    """Share of pairs whose chosen reward is strictly higher (a tie counts as wrong)."""
    return (chosen_rewards > rejected_rewards).float().mean().item()
