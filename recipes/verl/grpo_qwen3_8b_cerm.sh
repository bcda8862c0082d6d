#!/usr/bin/env bash
# GRPO on Qwen3-8B rewarded by CE-RM-4B: the CE-RM paper's downstream setting (8 rollouts per prompt),
# with verl hosting the judge (the default of `reward=cerm`).
#
# Cluster (Ray, started before this script): 3 nodes x 8 GPUs. verl's own ResourcePoolManager reserves
# all of them at once: global_pool [8, 8] for actor/rollout/ref and reward_pool [8] for the judge, each
# node bundle STRICT_PACK, so any node may become the judge's (all three are alike) and nothing is left
# to a later reservation (20 of 20 simulated trials placed, tests/cluster/test_placement.py). verl starts
# 8 vLLM reward servers of CE-RM-4B (tp=1) there, awake for the whole run (free_cache_engine follows
# enable_resource_pool); the judge logic runs in CPU-only Ray actors and sends each prompt's criteria
# and evaluations to one server, so its prefix cache serves the group.
# On one node, drop the three reward_model.enable_resource_pool/nnodes/n_gpus_per_node lines and set
# trainer.nnodes=1: the judge's servers then share the policy's GPUs and sleep between reward steps.
#
#   cerm verl prepare-data my_prompts.jsonl -o $DATA/train.parquet
#   cerm verl prepare-data my_eval_prompts.jsonl -o $DATA/test.parquet --split test
#   DATA=$HOME/data/cerm bash recipes/verl/grpo_qwen3_8b_cerm.sh
#
# Extra arguments are passed on to verl (e.g. trainer.total_epochs=2, or --cfg job to print the config).
set -euo pipefail
DATA=${DATA:-$HOME/data/cerm}
POLICY=${POLICY:-Qwen/Qwen3-8B}
JUDGE=${JUDGE:-PKU-ONELab/CE-RM-4B}
PYTHON=${PYTHON:-python3}

exec "$PYTHON" -m verl.trainer.main_ppo \
    reward=cerm \
    algorithm.adv_estimator=grpo \
    critic.enable=False \
    data.train_files="$DATA/train.parquet" \
    data.val_files="$DATA/test.parquet" \
    data.train_batch_size=128 \
    data.max_prompt_length=1024 \
    data.max_response_length=4096 \
    data.filter_overlong_prompts=True \
    actor_rollout_ref.model.path="$POLICY" \
    actor_rollout_ref.model.use_remove_padding=True \
    actor_rollout_ref.model.enable_gradient_checkpointing=True \
    actor_rollout_ref.actor.optim.lr=1e-6 \
    actor_rollout_ref.actor.ppo_mini_batch_size=32 \
    actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu=2 \
    actor_rollout_ref.actor.use_kl_loss=True \
    actor_rollout_ref.actor.kl_loss_coef=0.001 \
    actor_rollout_ref.actor.fsdp_config.param_offload=False \
    actor_rollout_ref.rollout.name=vllm \
    actor_rollout_ref.rollout.n=8 \
    actor_rollout_ref.rollout.tensor_model_parallel_size=2 \
    actor_rollout_ref.rollout.gpu_memory_utilization=0.6 \
    actor_rollout_ref.rollout.log_prob_micro_batch_size_per_gpu=4 \
    actor_rollout_ref.ref.log_prob_micro_batch_size_per_gpu=4 \
    reward.num_workers=16 \
    reward.reward_model.enable_resource_pool=True \
    reward.reward_model.nnodes=1 \
    reward.reward_model.n_gpus_per_node=8 \
    reward.cerm.engine.model="$JUDGE" \
    reward.cerm.engine.gpu_memory_utilization=0.85 \
    reward.cerm.engine.max_model_len=16384 \
    reward.cerm.judge.failure.on_failure=neutral \
    trainer.logger='[console,wandb]' \
    trainer.project_name=cerm-grpo \
    trainer.experiment_name=qwen3-8b-grpo-ce-rm-4b \
    trainer.nnodes=2 \
    trainer.n_gpus_per_node=8 \
    trainer.save_freq=50 \
    trainer.test_freq=10 \
    trainer.total_epochs=1 \
    "$@"
