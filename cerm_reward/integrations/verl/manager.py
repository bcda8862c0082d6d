"""``reward_manager.name=cerm``: verl's reward manager for the CE-RM judge.

verl calls :meth:`CermRewardManager.run_single` once per sample, in whichever reward
worker the sample landed. The manager needs only what every trainer mode forwards
(``raw_prompt``, ``prompts``, ``responses``, ``attention_mask``: the V1 colocated path
sends nothing else) and joins the sample to its group through the pool's shared
criteria cache, so criteria are generated once per prompt, not once per rollout.
"""

from __future__ import annotations

import logging
from typing import Any

from verl import DataProto
from verl.experimental.reward_loop.reward_manager import register
from verl.experimental.reward_loop.reward_manager.base import RewardManagerBase

from cerm_reward.integrations.verl.client import client_for
from cerm_reward.integrations.verl.metrics import is_validation
from cerm_reward.integrations.verl.settings import VerlJudgeSettings

logger = logging.getLogger(__name__)


@register("cerm")
class CermRewardManager(RewardManagerBase):
    """Scores each rollout with CE-RM against its prompt's shared criteria (0-10)."""

    def __init__(
        self,
        config: Any,
        tokenizer: Any,
        compute_score: Any = None,
        reward_router_address: str | None = None,
        reward_model_tokenizer: Any = None,
    ) -> None:
        super().__init__(config, tokenizer, compute_score)
        settings = VerlJudgeSettings.from_trainer_config(config)
        router_model = None
        if reward_router_address is not None:
            router_model = config.reward.reward_model.model_path
        self.client = client_for(settings, reward_router_address=reward_router_address, router_model=router_model)

    async def run_single(self, data: DataProto) -> dict[str, Any]:
        item = data[-1:][0]  # multi-output sessions: the last output is the answer
        if "raw_prompt" not in item.non_tensor_batch:
            raise KeyError(
                "cerm reward manager: the batch has no 'raw_prompt' (the chat the policy answered); "
                "keep verl's default data.return_raw_chat=True"
            )
        query = [dict(message) for message in item.non_tensor_batch["raw_prompt"]]
        response_ids = item.batch["responses"]
        valid_length = int(item.batch["attention_mask"][-response_ids.shape[-1] :].sum())
        response = await self.loop.run_in_executor(
            None, lambda: self.tokenizer.decode(response_ids[:valid_length], skip_special_tokens=True)
        )
        validation = is_validation(item.non_tensor_batch.get("extra_info"), data.meta_info)
        reward, extra = await self.client.judge(query, response, validation=validation)
        return {"reward_score": reward, "reward_extra_info": extra}
