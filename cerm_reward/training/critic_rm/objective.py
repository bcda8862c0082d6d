"""The joint objective of Critic-RM: Bradley-Terry on the head + lm_weight(t) x critique NLL.

Pure functions, so each piece can be checked against a hand computation:

* ``bradley_terry_loss``: mean of ``-log sigmoid(r_chosen - r_rejected)`` over pairs;
* ``critique_nll``: mean next-token negative log-likelihood over the critique tokens only
  (labels are ``-100`` elsewhere, and everywhere in a sequence that must not train the LM);
  the model projects only those positions onto the vocabulary, and the loss adds no
  ``[N, vocab]`` tensor to the logits (``CritiqueNll``);
* ``lm_weight_at``: the critique-loss weight at training progress t in [0, 1], constant or
  decaying (linear, cosine) from ``start`` to ``floor``: the critique loss leads early, when the
  model must learn to write critiques, and the reward loss dominates at the end.
"""

from __future__ import annotations

import math
from typing import Any

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


NLL_CHUNK_ROWS = 128
"""Rows of logits one step of :class:`CritiqueNll` works on: 128 x a 49K vocabulary is 25 MB of
fp32 temporaries, where a whole critique batch's would be several hundred."""


class CritiqueNll(torch.autograd.Function):
    """Mean cross-entropy whose backward overwrites the logits with their own gradient.

    ``F.cross_entropy`` keeps a ``[N, vocab]`` log-softmax for its backward and allocates two more
    of that size there (the NLL's gradient, then the log-softmax's), all while every layer's
    activations are still held: the largest transient of a Critic-RM step. Here the forward keeps
    only the logits and one log-sum-exp per row (computed ``NLL_CHUNK_ROWS`` rows at a time), and
    the backward turns the logits into ``(softmax - one_hot) / N`` in place and hands them on as
    their gradient, so the loss adds no ``[N, vocab]`` tensor of its own. The logits are a
    temporary the loss alone reads (the vocabulary projection does not keep its output for its
    own backward); if anything else saved them, autograd's version check raises instead of
    computing with overwritten values.
    """

    @staticmethod
    def forward(ctx: Any, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        log_norm = torch.cat([torch.logsumexp(rows, dim=-1) for rows in logits.split(NLL_CHUNK_ROWS)])
        picked = logits.gather(1, targets.unsqueeze(1)).squeeze(1)
        ctx.save_for_backward(logits, log_norm, targets)
        return (log_norm - picked).mean()

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        logits, log_norm, targets = ctx.saved_tensors
        scale = grad / targets.numel()
        for rows, norms in zip(logits.split(NLL_CHUNK_ROWS), log_norm.split(NLL_CHUNK_ROWS), strict=True):
            rows.sub_(norms.unsqueeze(1)).exp_().mul_(scale)
        logits.scatter_add_(1, targets.unsqueeze(1), (-scale).expand(targets.numel(), 1))
        return logits, None


def critique_nll(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean NLL of ``targets`` (N,) under ``logits`` (N, vocab); zero, graph kept, when N = 0.

    With a graph, the logits hold their own gradient after the backward pass (:class:`CritiqueNll`).
    """
    if targets.numel() == 0:
        return logits.sum() * 0.0  # keeps the graph (and DDP's gradient hooks) intact
    logits = logits.float()  # a copy under bf16 autocast, the tensor itself in fp32
    if not logits.requires_grad:
        return F.cross_entropy(logits, targets)  # evaluation: nothing to overwrite
    return CritiqueNll.apply(logits, targets)


def joint_loss(bt_loss: torch.Tensor, nll: torch.Tensor, lm_weight: float) -> torch.Tensor:
    return bt_loss + lm_weight * nll


def pairwise_accuracy(chosen_rewards: torch.Tensor, rejected_rewards: torch.Tensor) -> float:
    """Share of pairs whose chosen reward is strictly higher (a tie counts as wrong)."""
    return (chosen_rewards > rejected_rewards).float().mean().item()
