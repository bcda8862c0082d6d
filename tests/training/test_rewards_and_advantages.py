"""Two-stage rewards and grouped advantages against tables worked out by hand (docs/method.md §1.2).

The pair below has two criteria with two evaluations of each response under each:

    criteria 0: chosen scores [8, 6], rejected scores [5, 6]
        comparisons (chosen j, rejected k): (8>5)=1 (8>6)=1 (6>5)=1 (6=6)=tie
    criteria 1: chosen scores [fail, 9], rejected scores [3, fail]
        only (9>3)=1 is a valid comparison; the three others involve a failed evaluation
"""

import pytest

from cerm_reward.training.cerm.advantages import Branch, group_id, normalise_group, pair_advantages
from cerm_reward.training.cerm.rewards import pair_rewards
from cerm_reward.training.cerm.settings import AdvantageSettings, RewardSettings, TwoStageSettings

CHOSEN = [[8.0, 6.0], [None, 9.0]]
REJECTED = [[5.0, 6.0], [3.0, None]]


def test_rewards_with_ties_counting_zero():
    rewards = pair_rewards(CHOSEN, REJECTED, RewardSettings())
    # criteria 0: e+0 wins both (1), e+1 wins one and ties one (0.5); same for the rejected side.
    # criteria 1: the failed e+0 and e-1 get the minimum; e+1 and e-0 only have their one valid comparison.
    assert rewards.chosen == [[1.0, 0.5], [0.0, 1.0]]
    assert rewards.rejected == [[1.0, 0.5], [1.0, 0.0]]
    # criteria reward: criteria 0 -> 3 of 4 right; criteria 1 -> failed comparisons count wrong: 1 of 4.
    assert rewards.criteria == [0.75, 0.25]
    assert (rewards.comparisons, rewards.correct, rewards.ties) == (5, 4, 1)
    assert (rewards.failed_evaluations, rewards.failed_criteria) == (2, 0)
    assert rewards.accuracy == pytest.approx(0.8)


def test_rewards_with_ties_counting_half():
    rewards = pair_rewards(CHOSEN, REJECTED, RewardSettings(tie_reward=0.5))
    assert rewards.chosen == [[1.0, 0.75], [0.0, 1.0]]
    assert rewards.rejected == [[1.0, 0.75], [1.0, 0.0]]
    assert rewards.criteria == [0.875, 0.25]


def test_a_failed_criteria_turn_and_an_evaluation_without_valid_partners():
    rewards = pair_rewards(
        [[7.0, 7.0]], [[None, None]], RewardSettings(tie_reward=0.5, failure_reward=0.0), criteria_failed=[True]
    )
    assert rewards.chosen == [[0.5, 0.5]]  # no valid partner: correctness unknown, counted as a tie
    assert rewards.rejected == [[0.0, 0.0]]  # failed evaluations: the minimum
    assert rewards.criteria == [0.0]  # the criteria turn itself failed
    assert (rewards.comparisons, rewards.failed_evaluations, rewards.failed_criteria) == (0, 2, 1)
    assert rewards.accuracy == 0.0


def test_mismatched_shapes_are_refused():
    with pytest.raises(ValueError, match="criteria"):
        pair_rewards([[1.0]], [[1.0], [2.0]], RewardSettings())


def test_grouped_advantages_by_hand():
    advantages = pair_advantages(pair_rewards(CHOSEN, REJECTED, RewardSettings()), AdvantageSettings())
    # criteria [0.75, 0.25]: mean 0.5, sample std sqrt(2 * 0.25^2 / 1) = 0.353553 -> +-0.707105
    assert advantages.criteria == pytest.approx([0.707105, -0.707105], abs=1e-5)
    # chosen [1, 0.5, 0, 1]: mean 0.625, sample std sqrt(0.6875 / 3) = 0.478714
    assert [a for row in advantages.chosen for a in row] == pytest.approx([0.783349, -0.261116, -1.305582, 0.783349], abs=1e-5)
    # rejected [1, 0.5, 1, 0]: the same values in another order
    assert [a for row in advantages.rejected for a in row] == pytest.approx([0.783349, -0.261116, 0.783349, -1.305582], abs=1e-5)


def test_an_all_equal_group_carries_no_advantage_and_a_single_one_keeps_its_reward():
    settings = AdvantageSettings()
    assert normalise_group([1.0, 1.0, 1.0, 1.0], settings) == [0.0, 0.0, 0.0, 0.0]
    assert normalise_group([0.0] * 8, settings) == [0.0] * 8
    assert normalise_group([0.75], settings) == pytest.approx([0.75])  # verl's GRPO: mean 0, std 1 for one sample
    assert normalise_group([1.0, 0.0], AdvantageSettings(norm_by_std=False)) == [0.5, -0.5]


def test_paper_defaults_give_twenty_trajectories_per_pair():
    settings = TwoStageSettings()
    assert (settings.num_criteria, settings.evaluations_per_response, settings.trajectories_per_pair) == (4, 2, 20)
    assert group_id("p1", Branch.CHOSEN) == "p1/chosen"
