"""Criteria prefetch in veRL: an agent loop that starts the judge's criteria before the policy writes.

CE-RM's criteria depend on the query alone, so they can be generated while the policy is
still generating its rollouts, and the reward call then finds them ready. This loop is
verl's own single-turn loop with one addition: before generating, it fires a prefetch for
the prompt to the judge pool (once per prompt per process; the pool's single-flight cache
absorbs the rest). It only attaches to the job's pool, which the reward workers create
before verl starts its agent loops: a pool built here would not know whether verl hosts
the judge model. Select it with
``actor_rollout_ref.rollout.agent.default_agent_loop=cerm_single_turn_agent``; the judge
settings are read from ``reward.cerm`` like the reward manager's.
"""

from __future__ import annotations

from typing import Any

from verl.experimental.agent_loop.agent_loop import AgentLoopOutput, register
from verl.experimental.agent_loop.single_turn_agent_loop import SingleTurnAgentLoop

from cerm_reward.integrations.verl.client import attached_client
from cerm_reward.integrations.verl.settings import VerlJudgeSettings

AGENT_NAME = "cerm_single_turn_agent"


@register(AGENT_NAME)
class CermPrefetchAgentLoop(SingleTurnAgentLoop):
    """verl's single-turn loop plus a criteria prefetch when the prompt enters the rollout."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._settings = VerlJudgeSettings.from_trainer_config(self.config)

    async def run(self, sampling_params: dict[str, Any], **kwargs: Any) -> AgentLoopOutput:
        client = attached_client(self._settings)
        if client is not None:  # no pool yet: the reward call generates the criteria
            client.prefetch([dict(message) for message in kwargs["raw_prompt"]])
        return await super().run(sampling_params, **kwargs)
