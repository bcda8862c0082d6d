"""cerm-reward: the CE-RM generative judge as a reward for RLHF training.

The core (judges, criteria cache, results, config) imports no framework and no
engine implementation; engines, integrations and the CLI sit at the edge.
"""

from cerm_reward.config import CermConfig, CermJudgeConfig, CriticJudgeConfig, EngineConfig, FailurePolicy, SamplingConfig
from cerm_reward.criteria_cache import CriteriaCache
from cerm_reward.judges.base import GroupJudge
from cerm_reward.judges.cerm.judge import CermJudge
from cerm_reward.judges.queries import InvalidInputError
from cerm_reward.judges.registry import open_judge
from cerm_reward.results import Criteria, FailureKind, GroupResult, Judgement, TokenUsage

__version__ = "0.1.0"

__all__ = [
    "CermConfig",
    "CermJudge",
    "Criteria",
    "CriteriaCache",
    "CriticJudgeConfig",
    "EngineConfig",
    "FailureKind",
    "FailurePolicy",
    "GroupJudge",
    "GroupResult",
    "InvalidInputError",
    "CermJudgeConfig",
    "Judgement",
    "SamplingConfig",
    "TokenUsage",
    "open_judge",
]
