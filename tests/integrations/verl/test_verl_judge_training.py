"""Training the judge in verl: the two-stage agent loop on the real vLLM engine, and verl's own advantage code.

The judge under training is the embedded model in the in-process vLLM engine, behind an adapter
that honours verl's ``server_manager.generate`` contract (prompt token ids in, token ids out).
The agent loop is built by verl's own registry and ``hydra.utils.instantiate``, from verl's real
Hydra config, as verl's agent-loop worker builds it.
"""

import asyncio

import numpy as np
import pytest

pytest.importorskip("verl")

from cerm_reward.engines.embedded import embedded_checkpoint  # noqa: E402
from cerm_reward.integrations.verl.batches import compose_trainer_config  # noqa: E402
from cerm_reward.training.cerm.advantages import Branch, group_id, pair_advantages  # noqa: E402
from cerm_reward.training.cerm.outputs import TWO_STAGE_AGENT_NAME  # noqa: E402
from cerm_reward.training.cerm.rewards import pair_rewards  # noqa: E402
from cerm_reward.training.cerm.settings import AdvantageSettings, RewardSettings, TwoStageSettings  # noqa: E402

PAIR = {
    "pair_id": "p-primes",
    "query": "Is 91 a prime number?",
    "chosen": "No. 91 = 7 x 13, so it has divisors other than 1 and itself.",
    "rejected": "Yes, 91 is prime.",
}
SMALL = [
    "+cerm_training.num_criteria=2",
    "+cerm_training.evaluations_per_response=1",
    "+cerm_training.criteria.max_tokens=24",
    "+cerm_training.evaluation.max_tokens=24",
]


class JudgeServer:
    """verl's ``server_manager`` contract on the in-process vLLM engine: token ids in, token ids out."""

    def __init__(self, engine) -> None:
        self.engine = engine
        self.calls: list[tuple[list[int], list[int]]] = []

    async def generate(self, request_id, *, prompt_ids, sampling_params, **_):
        from verl.workers.rollout.replica import TokenOutput
        from vllm import SamplingParams
        from vllm.inputs import TokensPrompt
        from vllm.sampling_params import RequestOutputKind

        params = SamplingParams(
            max_tokens=sampling_params["max_tokens"],
            temperature=sampling_params["temperature"],
            top_p=sampling_params["top_p"],
            seed=len(self.calls),
            output_kind=RequestOutputKind.FINAL_ONLY,
        )
        final = None
        async for output in self.engine._llm.generate(
            TokensPrompt(prompt_token_ids=list(prompt_ids)), params, request_id=request_id
        ):
            final = output
        generated = list(final.outputs[0].token_ids)
        self.calls.append((list(prompt_ids), generated))
        return TokenOutput(token_ids=generated, stop_reason="completed")


def trainer_config(*extra: str):
    return compose_trainer_config(
        f"actor_rollout_ref.model.path={embedded_checkpoint()}",
        "data.max_prompt_length=1024",
        "actor_rollout_ref.rollout.response_length=32",
        "actor_rollout_ref.rollout.n=6",
        *SMALL,
        *extra,
    )


def build_agent_loop(config, server, tokenizer):
    import hydra
    from verl.experimental.agent_loop.agent_loop import DictConfigWrap, ToolListWrap, _agent_loop_registry
    from verl.utils.dataset.rl_dataset import RLHFDataset

    return hydra.utils.instantiate(
        config=_agent_loop_registry[TWO_STAGE_AGENT_NAME],
        trainer_config=DictConfigWrap(config=config),
        server_manager=server,
        tokenizer=tokenizer,
        processor=None,
        hf_model_type="llama",
        dataset_cls=RLHFDataset,
        data_config=DictConfigWrap(config.data),
        tools=ToolListWrap([]),
    )


@pytest.fixture(scope="module")
def tokenizer():
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(embedded_checkpoint()))


@pytest.mark.engine
async def test_the_two_stage_rollout_gives_one_trajectory_per_session_with_only_generated_tokens_trainable(
    embedded_engine, tokenizer
):
    config = trainer_config()
    server = JudgeServer(embedded_engine)
    chat = [{"role": "user", "content": PAIR["query"]}]
    sessions = [
        build_agent_loop(config, server, tokenizer).run(
            {"temperature": 1.0, "top_p": 1.0, "logprobs": False},
            raw_prompt=chat,
            extra_info=PAIR,
            uid="u1",
            session_id=session,
            global_steps=1,
        )  # fmt: skip
        for session in range(6)
    ]
    outputs = await asyncio.gather(*sessions)

    # One rollout for the pair: 2 criteria calls + 2 x (1 chosen + 1 rejected) evaluation calls, shared by 6 sessions.
    assert len(server.calls) == 6
    branches = [o.extra_fields["reward_extra_info"]["cerm_branch"] for o in outputs]
    assert branches == ["criteria", "criteria", "chosen", "rejected", "chosen", "rejected"]
    generated = {tuple(prompt): completion for prompt, completion in server.calls}
    for output in outputs:
        # the response is exactly what the engine generated for that prompt, and all of it (only it) is trainable
        assert output.response_ids == generated[tuple(output.prompt_ids)]
        assert output.response_mask == [1] * len(output.response_ids) and output.response_ids
        assert len(output.response_ids) <= 24
    criteria_prompt = outputs[0].prompt_ids
    assert outputs[1].prompt_ids == criteria_prompt
    assert PAIR["query"] in tokenizer.decode(criteria_prompt)
    for index, output in enumerate(outputs[2:]):
        criteria_text = tokenizer.decode(outputs[index // 2].response_ids, skip_special_tokens=True).strip()
        stage2 = tokenizer.decode(output.prompt_ids)
        assert criteria_text and criteria_text in stage2  # the stage-2 prompt replays its own sampled criteria
        assert stage2.startswith(tokenizer.decode(criteria_prompt)[: -len("<|im_start|>assistant\n")])
        assert (PAIR["chosen"] if index % 2 == 0 else PAIR["rejected"]) in stage2

    # rewards and advantages are those of the pure two-stage code on the parsed scores
    info = [o.extra_fields["reward_extra_info"] for o in outputs]
    score = lambda i: None if info[i]["cerm_failure"] else info[i]["cerm_score"]  # noqa: E731
    criteria_failed = [bool(info[i]["cerm_failure"]) for i in (0, 1)]
    rewards = pair_rewards([[score(2)], [score(4)]], [[score(3)], [score(5)]], RewardSettings(), criteria_failed)
    advantages = pair_advantages(rewards, AdvantageSettings())
    expected = [
        *advantages.criteria,
        advantages.chosen[0][0],
        advantages.rejected[0][0],
        advantages.chosen[1][0],
        advantages.rejected[1][0],
    ]
    assert [o.reward_score for o in outputs] == pytest.approx(expected)
    assert [i["cerm_reward"] for i in info] == pytest.approx(
        [*rewards.criteria, rewards.chosen[0][0], rewards.rejected[0][0], rewards.chosen[1][0], rewards.rejected[1][0]]
    )


def test_configs_the_rollout_cannot_honour_are_refused(tokenizer):
    import copy

    from omegaconf import OmegaConf

    from cerm_reward.integrations.verl.judge_training import check_trainer_config

    good = trainer_config()
    settings = TwoStageSettings.from_node(good.cerm_training)
    check_trainer_config(good, tokenizer, settings)  # the good one passes

    def changed(key, value):
        config = copy.deepcopy(good)
        OmegaConf.update(config, key, value)
        return config

    with pytest.raises(ValueError, match="max_prompt_length"):
        check_trainer_config(changed("data.max_prompt_length", 256), tokenizer, settings)  # rollout.prompt_length follows it
    with pytest.raises(ValueError, match="rollout.n=8"):
        check_trainer_config(changed("actor_rollout_ref.rollout.n", 8), tokenizer, settings)
    with pytest.raises(ValueError, match="response_length"):
        check_trainer_config(changed("actor_rollout_ref.rollout.response_length", 16), tokenizer, settings)


def test_grouped_advantages_equal_verl_grpo_per_group_and_survive_verl_compute_advantage():
    """The pure grouped advantages are verl's GRPO run per (pair, branch) group, and verl's own
    ``compute_advantage`` with our registered estimator puts each on every generated token."""
    import torch
    from tensordict import TensorDict
    from verl import DataProto
    from verl.trainer.ppo.core_algos import compute_grpo_outcome_advantage
    from verl.trainer.ppo.ray_trainer import compute_advantage

    from cerm_reward.integrations.verl.judge_training import ADVANTAGE_ESTIMATOR

    settings = TwoStageSettings()  # the paper's 4 criteria x (2 chosen + 2 rejected)
    chosen = [[9.0, 7.0], [6.0, None], [8.0, 8.0], [5.0, 9.5]]
    rejected = [[3.0, 7.0], [6.5, 2.0], [8.0, None], [None, None]]
    rewards = pair_rewards(chosen, rejected, settings.rewards, criteria_failed=[False, False, False, True])
    ours = pair_advantages(rewards, settings.advantages)
    rows = [(Branch.CRITERIA, r) for r in rewards.criteria]
    rows += [(Branch.CHOSEN, r) for row in rewards.chosen for r in row]
    rows += [(Branch.REJECTED, r) for row in rewards.rejected for r in row]
    expected = list(ours.criteria) + [a for row in ours.chosen for a in row] + [a for row in ours.rejected for a in row]

    lengths = [3, 5, 2, 6] * 5
    mask = torch.tensor([[1] * n + [0] * (6 - n) for n in lengths], dtype=torch.float32)
    scores = torch.zeros_like(mask)
    for i, ((_, reward), n) in enumerate(zip(rows, lengths, strict=True)):
        scores[i, n - 1] = reward
    index = np.array([group_id("pair-1", branch) for branch, _ in rows], dtype=object)
    verl_grpo, _ = compute_grpo_outcome_advantage(scores, mask, index, epsilon=settings.advantages.epsilon)
    assert verl_grpo[:, 0].tolist() == pytest.approx(expected, abs=1e-5)

    # what the agent loop hands verl: the advantage as the score on the last token
    data = DataProto(batch=TensorDict({"response_mask": mask, "token_level_rewards": scores * 0}, batch_size=len(rows)))
    for i, (advantage, n) in enumerate(zip(expected, lengths, strict=True)):
        data.batch["token_level_rewards"][i, n - 1] = advantage
    data.non_tensor_batch["uid"] = np.array(["pair-1"] * len(rows), dtype=object)
    out = compute_advantage(data, adv_estimator=ADVANTAGE_ESTIMATOR)
    assert torch.allclose(out.batch["advantages"], verl_grpo * mask, atol=1e-5)
    assert torch.equal(out.batch["advantages"] != 0, (mask != 0) & (verl_grpo != 0))  # nothing outside generated tokens


def test_the_judge_training_config_composes_with_verl_and_carries_the_paper_numbers(tokenizer):
    from cerm_reward.integrations.verl.judge_training import ADVANTAGE_ESTIMATOR, SETTINGS_NODE, check_trainer_config

    config = compose_trainer_config(f"actor_rollout_ref.model.path={embedded_checkpoint()}", config_name="cerm_judge_trainer")
    settings = TwoStageSettings.from_node(config[SETTINGS_NODE])
    assert settings == TwoStageSettings()  # the YAML mirrors the typed defaults, nothing defined twice differently
    actor = config.actor_rollout_ref.actor
    assert (actor.optim.lr, actor.ppo_mini_batch_size, actor.use_kl_loss, actor.kl_loss_coef) == (2e-6, 64, True, 1e-3)
    assert config.data.train_batch_size == 4 * 64 and config.actor_rollout_ref.rollout.n == 20
    assert config.algorithm.adv_estimator == ADVANTAGE_ESTIMATOR and config.trainer.use_v1
    assert config.actor_rollout_ref.rollout.agent.default_agent_loop == TWO_STAGE_AGENT_NAME
    assert (config.actor_rollout_ref.rollout.prompt_length, config.actor_rollout_ref.rollout.response_length) == (8192, 4096)
    check_trainer_config(config, tokenizer, settings)
