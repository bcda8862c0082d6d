#!/usr/bin/env bash
# GRPO on Qwen3-8B rewarded by CE-RM-4B on judge nodes outside verl (cerm's own Ray pool).
# The default layout, with verl hosting the judge, is recipes/verl/grpo_qwen3_8b_cerm.sh; use this one
# when the judge nodes are not verl's to reserve (other GPU types, a judge shared across jobs).
#
# Cluster (Ray, started before this script): 2 policy nodes x 8 GPUs for verl's resource pools, and
# judge node(s) started with `ray start --address=$HEAD:6379 --resources='{"cerm_judge": 8}'`.
# verl's placement groups carry no node constraint: created first, they took the judge node's GPUs in
# about 3 of 4 simulated trials. Our entry point (cerm_reward.integrations.verl.main_ppo) reserves the
# judge's bundles (1 GPU + cerm_judge each, CE-RM-4B fits tp=1) before verl reserves its pools, and the
# judge kept its node in 20 of 20 trials (tests/cluster/test_placement.py). If the bundles cannot be
# placed within reward.cerm.pool.placement_timeout_s, start-up fails naming the missing resources.
#
#   cerm verl prepare-data my_prompts.jsonl -o $DATA/train.parquet
#   cerm verl prepare-data my_eval_prompts.jsonl -o $DATA/test.parquet --split test
#   DATA=$HOME/data/cerm bash recipes/verl/grpo_qwen3_8b_cerm_judge_nodes.sh
#
# Extra arguments are passed on to verl (e.g. trainer.total_epochs=2, or --cfg job to print the config).
set -euo pipefail
DATA=${DATA:-$HOME/data/cerm}
POLICY=${POLICY:-Qwen/Qwen3-8B}
JUDGE=${JUDGE:-PKU-ONELab/CE-RM-4B}
JUDGE_REPLICAS=${JUDGE_REPLICAS:-8}
PYTHON=${PYTHON:-python3}

exec "$PYTHON" -m cerm_reward.integrations.verl.main_ppo \
    reward_model=cerm \
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
    reward.reward_model.enable=False \
    reward.cerm.config=null \
    reward.cerm.engine.model="$JUDGE" \
    reward.cerm.engine.gpu_memory_utilization=0.85 \
    reward.cerm.engine.max_model_len=16384 \
    reward.cerm.pool.replicas="$JUDGE_REPLICAS" \
    reward.cerm.pool.num_gpus=1 \
    '+reward.cerm.pool.resources.cerm_judge=1' \
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
