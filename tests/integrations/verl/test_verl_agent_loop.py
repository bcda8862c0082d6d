"""Criteria prefetch from verl's rollout: our agent loop, built by verl's own registry, on real engines.

The policy is the embedded model in the in-process vLLM engine behind an adapter that honours
verl's ``server_manager.generate`` contract (prompt token ids in, token ids out); the judge pool
talks to a real ``vllm serve``.
"""

import asyncio
import uuid

import pytest

ray = pytest.importorskip("ray")
pytest.importorskip("verl")

from cerm_reward.engines.embedded import embedded_checkpoint  # noqa: E402
from cerm_reward.integrations.verl.batches import compose_trainer_config  # noqa: E402
from cerm_reward.serving.ray_pool import JudgePool  # noqa: E402

QUESTION = "Name three primary colours."


class PolicyServer:
    """verl's ``server_manager`` contract on the in-process vLLM engine: token ids in, token ids out."""

    def __init__(self, engine) -> None:
        self.engine = engine
        self.requests: list[list[int]] = []

    async def generate(self, request_id, *, prompt_ids, sampling_params, **_):
        from verl.workers.rollout.replica import TokenOutput
        from vllm import SamplingParams
        from vllm.inputs import TokensPrompt
        from vllm.sampling_params import RequestOutputKind

        self.requests.append(list(prompt_ids))
        params = SamplingParams(max_tokens=16, temperature=1.0, seed=len(self.requests), output_kind=RequestOutputKind.FINAL_ONLY)
        final = None
        async for output in self.engine._llm.generate(
            TokensPrompt(prompt_token_ids=list(prompt_ids)), params, request_id=request_id
        ):
            final = output
        return TokenOutput(token_ids=list(final.outputs[0].token_ids), stop_reason="completed")


@pytest.mark.engine
@pytest.mark.server
async def test_the_agent_loop_prefetches_criteria_once_per_prompt_and_the_reward_call_finds_them(
    local_ray, vllm_server, embedded_engine
):
    import hydra
    from transformers import AutoTokenizer
    from verl.experimental.agent_loop.agent_loop import DictConfigWrap, ToolListWrap, _agent_loop_registry
    from verl.utils.dataset.rl_dataset import RLHFDataset

    from cerm_reward.integrations.verl.agent_loop import AGENT_NAME
    from cerm_reward.integrations.verl.client import attached_client, client_for
    from cerm_reward.integrations.verl.settings import VerlJudgeSettings

    pool_name = f"prefetch-{uuid.uuid4().hex[:6]}"
    config = compose_trainer_config(
        "reward=cerm",
        f"actor_rollout_ref.model.path={embedded_checkpoint()}",
        f"actor_rollout_ref.rollout.agent.default_agent_loop={AGENT_NAME}",
        "actor_rollout_ref.rollout.prompt_length=256",
        "actor_rollout_ref.rollout.response_length=16",
        f"reward.cerm.pool.name={pool_name}",
        "reward.cerm.pool.num_cpus=0.1",
        "reward.cerm.engine.kind=http",
        f"reward.cerm.engine.base_url={vllm_server}",
        "reward.cerm.judge.criteria.max_tokens=48",
        "reward.cerm.judge.evaluation.max_tokens=24",
        "reward.cerm.metrics.enable=false",
    )
    tokenizer = AutoTokenizer.from_pretrained(str(embedded_checkpoint()))
    policy = PolicyServer(embedded_engine)
    client = client_for(VerlJudgeSettings.from_trainer_config(config))  # a reward worker creates the pool first, as in verl

    def agent_loop():
        return hydra.utils.instantiate(
            config=_agent_loop_registry[config.actor_rollout_ref.rollout.agent.default_agent_loop],
            trainer_config=DictConfigWrap(config=config),
            server_manager=policy,
            tokenizer=tokenizer,
            processor=None,
            hf_model_type=None,
            dataset_cls=RLHFDataset,
            data_config=DictConfigWrap(config.data),
            tools=ToolListWrap([]),
        )

    chat = [{"role": "user", "content": QUESTION}]
    rollouts = await asyncio.gather(*(agent_loop().run({"temperature": 1.0}, raw_prompt=chat) for _ in range(4)))

    assert len(policy.requests) == 4 and all(output.response_ids for output in rollouts)  # verl's loop still generates
    assert all(sum(output.response_mask) == len(output.response_ids) for output in rollouts)
    prefetcher = attached_client(VerlJudgeSettings.from_trainer_config(config))
    assert prefetcher.prefetch(chat) is False  # this process already sent the prompt once: nothing more goes out
    pool = JudgePool.connect(pool_name, client.pool.config.namespace)
    # The prefetch is fire-and-forget: wait (boundedly) until the replica has taken it, then count.
    deadline = asyncio.get_running_loop().time() + 30
    while (stats := (await pool.stats())[0])["criteria_cache"]["misses"] == 0 and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0.1)
    assert stats["criteria_cache"]["misses"] == 1  # one criteria turn started for 4 rollouts (it may still be running)

    reward, extra = await client.judge(chat, tokenizer.decode(rollouts[0].response_ids, skip_special_tokens=True))
    assert extra["cerm_criteria_lookup"] in {"hit", "joined"}  # the reward call did not start the criteria
    (stats,) = await pool.stats()
    assert stats["criteria_generations"] == 1
    pool.shutdown()
