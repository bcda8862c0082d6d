"""The objective and the lm_weight schedules against hand-computed values."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from cerm_reward.judges.critic_rm.model import next_token_targets
from cerm_reward.judges.critic_rm.sequences import IGNORE_INDEX
from cerm_reward.training.critic_rm.config import LmWeightSchedule
from cerm_reward.training.critic_rm.objective import (
    bradley_terry_loss,
    critique_nll,
    joint_loss,
    lm_weight_at,
    pairwise_accuracy,
    training_progress,
)


def test_bradley_terry_matches_hand_computation():
    chosen, rejected = torch.tensor([2.0, 0.0]), torch.tensor([1.0, 1.0])
    # -log sigmoid(1) = log(1 + e^-1) = 0.313262; -log sigmoid(-1) = log(1 + e) = 1.313262
    expected = (math.log1p(math.exp(-1)) + math.log1p(math.exp(1))) / 2
    assert bradley_terry_loss(chosen, rejected).item() == pytest.approx(expected, abs=1e-6)
    assert pairwise_accuracy(chosen, rejected) == 0.5
    assert pairwise_accuracy(torch.tensor([1.0]), torch.tensor([1.0])) == 0.0  # a tie is wrong


def test_next_token_targets_pick_the_labelled_positions():
    labels = torch.tensor([[IGNORE_INDEX, IGNORE_INDEX, 7, 8], [IGNORE_INDEX, 5, IGNORE_INDEX, IGNORE_INDEX]])
    mask, targets = next_token_targets(labels)
    # position i predicts labels[i + 1]: row 0 positions 1, 2 -> 7, 8; row 1 position 0 -> 5
    assert mask.tolist() == [[False, True, True], [True, False, False]]
    assert targets.tolist() == [7, 8, 5]


def test_critique_nll_matches_hand_computation():
    logits = torch.tensor([[0.0, 0.0], [math.log(3.0), 0.0]])
    targets = torch.tensor([1, 0])
    # uniform over 2 tokens: log 2; p(0) = 3/4: -log(3/4)
    expected = (math.log(2.0) - math.log(0.75)) / 2
    assert critique_nll(logits, targets).item() == pytest.approx(expected, abs=1e-6)


def test_critique_nll_is_zero_without_targets_and_keeps_the_graph():
    logits = torch.randn(0, 3, requires_grad=True)
    nll = critique_nll(logits, torch.zeros(0, dtype=torch.long))
    assert nll.item() == 0.0
    nll.backward()
    assert logits.grad is not None


def test_joint_loss_adds_the_weighted_nll():
    assert joint_loss(torch.tensor(0.5), torch.tensor(2.0), 1.25).item() == pytest.approx(3.0)


@pytest.mark.parametrize(
    ("kind", "progress", "expected"),
    [
        ("constant", 0.0, 1.25),
        ("constant", 0.7, 1.25),
        ("linear", 0.0, 1.25),
        ("linear", 0.5, 0.75),  # 1.25 + (0.25 - 1.25) * 0.5
        ("linear", 1.0, 0.25),
        ("cosine", 0.0, 1.25),
        ("cosine", 0.5, 0.75),  # 0.25 + 1.0 * 0.5 * (1 + cos(pi/2))
        ("cosine", 0.25, 0.25 + 0.5 * (1 + math.sqrt(0.5))),
        ("cosine", 1.0, 0.25),
        ("cosine", 3.0, 0.25),  # progress is clamped
    ],
)
def test_lm_weight_schedules(kind, progress, expected):
    schedule = LmWeightSchedule(kind=kind, start=1.25, floor=0.25)
    assert lm_weight_at(schedule, progress) == pytest.approx(expected)


def test_training_progress():
    assert training_progress(0, 10) == 0.0
    assert training_progress(5, 10) == 0.5
    assert training_progress(12, 10) == 1.0
    assert training_progress(3, 0) == 0.0


def test_critique_nll_gives_cross_entropy_and_its_gradient_without_a_vocabulary_sized_copy():
    torch.manual_seed(0)
    hidden = torch.randn(300, 16, requires_grad=True)  # 300 rows: more than one chunk
    weight = torch.randn(50, 16)
    targets = torch.randint(0, 50, (300,))
    expected = F.cross_entropy(hidden @ weight.T, targets)
    (expected_grad,) = torch.autograd.grad(expected, hidden)
    nll = critique_nll(hidden @ weight.T, targets)
    (grad,) = torch.autograd.grad(nll, hidden)
    assert nll.item() == pytest.approx(expected.item(), abs=1e-6)
    assert torch.allclose(grad, expected_grad, atol=1e-7)
