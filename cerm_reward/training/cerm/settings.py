"""Typed knobs of judge training: the one source of the two-stage rollout's defaults.

The numbers come from the CE-RM paper (Hu et al., Findings of ACL 2026, §training): 4 criteria
and 16 evaluations per preference pair, i.e. 2 evaluations of the chosen and 2 of the rejected
response under each criteria. How the rewards treat ties and unparsable evaluations is our
reconstruction (docs/training.md), so every choice is a setting here, not a constant in code.
The verl recipe's ``cerm_training`` node and the OpenRLHF agent file read these same fields.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from cerm_reward.config import SamplingConfig
from cerm_reward.frozen import FrozenModel


class RewardSettings(FrozenModel):
    """How pairwise comparisons under one criteria turn into rewards (docs/method.md §1.2)."""

    tie_reward: float = Field(default=0.0, ge=0.0, le=1.0)
    """Value of a comparison whose two scores are equal: 0 (a tie ranks nothing right), or 0.5."""
    failure_reward: float = Field(default=0.0, ge=0.0, le=1.0)
    """Reward of an evaluation that yields no score (and of a criteria turn that failed): the minimum."""


class AdvantageSettings(FrozenModel):
    """Group normalisation within each of the three groups of a pair (criteria / chosen / rejected)."""

    epsilon: float = Field(default=1e-6, gt=0.0)
    """Added to the standard deviation, as verl's GRPO does (``algorithm`` default 1e-6)."""
    norm_by_std: bool = True
    """(r - mean) / (std + eps) when true (GRPO); r - mean when false (Dr. GRPO style)."""


class TwoStageSettings(FrozenModel):
    """The two-stage rollout of one preference pair, its rewards and its advantages."""

    template: str = "cerm-v1"
    """Judge template version or YAML file: the published prompts by default."""
    num_criteria: int = Field(default=4, ge=1)
    """K_c: criteria texts sampled for the query (stage 1)."""
    evaluations_per_response: int = Field(default=2, ge=1)
    """Evaluations of the chosen and of the rejected response under each criteria (stage 2)."""
    criteria: SamplingConfig = SamplingConfig(max_tokens=2048, temperature=1.0)
    """Training budgets are ours (the paper gives none): half the inference script's 4096 / 8192,
    so that query + criteria + response fit an 8192-token prompt and a 4096-token response."""
    evaluation: SamplingConfig = SamplingConfig(max_tokens=4096, temperature=1.0)
    score_range: tuple[float, float] = (0.0, 10.0)
    rewards: RewardSettings = RewardSettings()
    advantages: AdvantageSettings = AdvantageSettings()

    @property
    def trajectories_per_pair(self) -> int:
        """K_c criteria + K_c x 2 x n evaluations (4 + 16 = 20 with the paper's numbers)."""
        return self.num_criteria * (1 + 2 * self.evaluations_per_response)

    @classmethod
    def from_node(cls, node: Any) -> TwoStageSettings:
        """From a plain mapping or an OmegaConf node (``None`` = all defaults)."""
        if node is None:
            return cls()
        if hasattr(node, "items") and not isinstance(node, dict):
            from omegaconf import OmegaConf

            node = OmegaConf.to_container(node, resolve=True)
        return cls.model_validate(node)
