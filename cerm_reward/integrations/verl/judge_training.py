"""Training the CE-RM judge in veRL: the two-stage rollout as an agent loop, and its advantage estimator.

**How the 20 trajectories of a pair reach verl.** verl's V1 trainer runs ``rollout.n`` sessions
of a prompt in one worker process (``AgentLoopWorkerTQ._run_prompt``) and passes each its
``session_id``. With ``rollout.n`` = K_c * (1 + 2n) (20 with the paper's numbers), the first
session of a pair to arrive runs the whole two-stage rollout once
(:func:`cerm_reward.training.cerm.rollout.two_stage_rollout`), and every session returns its own
trajectory as one ordinary output. A single output per session matters: with a list of outputs
verl copies the last output's reward onto the others, which would erase per-trajectory rewards.

**How the grouped advantages reach the loss.** verl's estimators see each row's reward and its
prompt ``uid``, not which of the three groups (criteria / chosen / rejected) a row belongs to.
So the rollout computes the advantages itself, grouped exactly as the paper says, in verl's GRPO
conventions, and hands each one over as the row's ``reward_score``; the registered estimator
``cerm_precomputed`` passes it to every generated token unchanged. The true rewards travel in
``reward_extra_info`` (``cerm_reward``) for logging. The trade-off: verl's ``critic/score``
metrics show advantages rather than rewards, and a KL penalty *in the reward*
(``algorithm.use_kl_in_reward``) would be added to advantages: use the KL loss
(``actor.use_kl_loss``), as the recipe does.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any
from uuid import uuid4

import torch
from verl.experimental.agent_loop.agent_loop import AgentLoopBase, AgentLoopMetrics, AgentLoopOutput, register
from verl.trainer.ppo.core_algos import register_adv_est

from cerm_reward.judges.templates import load_template
from cerm_reward.training.cerm.lengths import template_overhead
from cerm_reward.training.cerm.outputs import TWO_STAGE_AGENT_NAME
from cerm_reward.training.cerm.rewards import PairRewards
from cerm_reward.training.cerm.rollout import Generated, Trajectory, two_stage_rollout
from cerm_reward.training.cerm.settings import TwoStageSettings

logger = logging.getLogger(__name__)

ADVANTAGE_ESTIMATOR = "cerm_precomputed"
SETTINGS_NODE = "cerm_training"
"""The trainer-config node holding :class:`TwoStageSettings` (``config/cerm_judge_trainer.yaml``)."""


@register_adv_est(ADVANTAGE_ESTIMATOR)
def precomputed_advantage(
    token_level_rewards: torch.Tensor, response_mask: torch.Tensor, config: Any = None, **_: Any
) -> tuple[torch.Tensor, torch.Tensor]:
    """The row's score (the grouped advantage the rollout computed) on each of its generated tokens."""
    advantages = token_level_rewards.sum(dim=-1, keepdim=True) * response_mask
    return advantages, advantages


def check_trainer_config(config: Any, tokenizer: Any, settings: TwoStageSettings) -> None:
    """Refuse a config the two-stage rollout cannot honour, naming the key to change."""
    rollout = config.actor_rollout_ref.rollout
    if int(rollout.n) != settings.trajectories_per_pair:
        raise ValueError(
            f"actor_rollout_ref.rollout.n={rollout.n}: the two-stage rollout needs one session per trajectory, "
            f"{settings.trajectories_per_pair} = {settings.num_criteria} criteria x (1 + 2 x {settings.evaluations_per_response})"
        )
    for turn in ("criteria", "evaluation"):
        budget = getattr(settings, turn).max_tokens
        if budget > int(rollout.response_length):
            raise ValueError(
                f"{SETTINGS_NODE}.{turn}.max_tokens={budget} exceeds actor_rollout_ref.rollout.response_length="
                f"{rollout.response_length}; verl would cut the {turn} turn"
            )
    template = load_template(settings.template)
    kwargs = dict(config.data.get("apply_chat_template_kwargs") or {})
    least = template_overhead(tokenizer, template, settings.criteria.max_tokens, kwargs)
    if int(rollout.prompt_length) < least:
        raise ValueError(
            f"data.max_prompt_length (rollout.prompt_length={rollout.prompt_length}) is below {least} tokens, the stage-2 "
            f"prompt with an empty query and response and {settings.criteria.max_tokens} criteria tokens; verl would "
            "left-truncate the judge's prompts. Raise it and curate with the same value (cerm train prepare-data)"
        )


class _SharedRollouts:
    """The rollout of each pair in flight in this process, shared by the pair's sessions.

    The first session starts it; each session takes its trajectory; the last one frees the entry.
    """

    def __init__(self) -> None:
        self._tasks: dict[str, asyncio.Task[tuple[list[Trajectory], PairRewards]]] = {}
        self._waiting: dict[str, int] = {}

    async def take(self, key: str, sessions: int, session_id: int, start: Any) -> tuple[Trajectory, PairRewards]:
        if key not in self._tasks:
            self._tasks[key] = asyncio.ensure_future(start())
            self._waiting[key] = sessions
        task = self._tasks[key]
        try:
            trajectories, rewards = await asyncio.shield(task)
        finally:
            self._waiting[key] -= 1
            if self._waiting[key] == 0:
                del self._tasks[key], self._waiting[key]
        return trajectories[session_id], rewards


_ROLLOUTS = _SharedRollouts()


@register(TWO_STAGE_AGENT_NAME)
class TwoStageJudgeAgentLoop(AgentLoopBase):
    """One session = one trajectory of CE-RM's two-stage rollout of the row's preference pair."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.settings = TwoStageSettings.from_node(self.config.get(SETTINGS_NODE))
        self.template = load_template(self.settings.template)
        check_trainer_config(self.config, self.tokenizer, self.settings)

    async def _render(self, messages: list[dict[str, str]]) -> list[int]:
        builder = self.continuous_token_builder
        return await self.loop.run_in_executor(None, lambda: builder.build_initial_tokens(messages))

    async def _generate(self, prompt_ids: list[int], sampling_params: dict[str, Any]) -> Generated:
        output = await self.server_manager.generate(
            request_id=uuid4().hex, prompt_ids=prompt_ids, sampling_params=dict(sampling_params)
        )
        ids = list(output.token_ids)
        finished = len(ids) < sampling_params["max_tokens"] or (bool(ids) and ids[-1] == self.tokenizer.eos_token_id)
        return Generated(ids, list(output.log_probs) if output.log_probs else None, finished)

    def _decode(self, ids: list[int]) -> str:
        return self.tokenizer.decode(ids, skip_special_tokens=True)

    async def run(self, sampling_params: dict[str, Any], **kwargs: Any) -> AgentLoopOutput:
        session_id = kwargs.get("session_id")
        if session_id is None:
            raise ValueError(f"{TWO_STAGE_AGENT_NAME} runs one trajectory per session: it needs trainer.use_v1=true")
        pair = kwargs["extra_info"]
        key = f"{kwargs.get('uid', pair['pair_id'])}:{kwargs.get('global_steps', '')}"
        base = {k: v for k, v in sampling_params.items() if k not in ("temperature", "top_p")}

        def start():
            return two_stage_rollout(
                query=pair["query"],
                chosen=pair["chosen"],
                rejected=pair["rejected"],
                settings=self.settings,
                template=self.template,
                render=self._render,
                generate=self._generate,
                decode=self._decode,
                max_prompt_length=int(self.rollout_config.prompt_length),
                base_sampling=base,
            )

        trajectory, rewards = await _ROLLOUTS.take(key, self.settings.trajectories_per_pair, int(session_id), start)
        return to_agent_loop_output(trajectory, rewards, int(self.rollout_config.response_length))


def to_agent_loop_output(trajectory: Trajectory, rewards: PairRewards, response_length: int) -> AgentLoopOutput:
    """verl's output for one trajectory: every response token generated (mask 1), the advantage as its score."""
    ids = trajectory.response_ids[:response_length]
    extra_info = {
        "cerm_reward": trajectory.reward,
        "cerm_advantage": trajectory.advantage,
        "cerm_branch": trajectory.branch.value,
        "cerm_score": -1.0 if trajectory.score is None else trajectory.score,
        "cerm_failure": trajectory.failure or "",
        "cerm_pair_accuracy": rewards.accuracy,
    }
    return AgentLoopOutput(
        prompt_ids=trajectory.prompt_ids,
        response_ids=ids,
        response_mask=[1] * len(ids),
        response_logprobs=trajectory.log_probs[:response_length] if trajectory.log_probs else None,
        reward_score=trajectory.advantage,
        num_turns=2,
        metrics=AgentLoopMetrics(),
        extra_fields={"reward_extra_info": extra_info, "turn_scores": [], "tool_rewards": []},
    )
