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
source "$(dirname "${BASH_SOURCE[0]}")/grpo_qwen3_8b_args.sh"

exec "$PYTHON" -m verl.trainer.main_ppo \
    reward=cerm \
    reward.num_workers=16 \
    reward.reward_model.enable_resource_pool=True \
    reward.reward_model.nnodes=1 \
    reward.reward_model.n_gpus_per_node=8 \
    reward.cerm.engine.model="$JUDGE" \
    reward.cerm.engine.gpu_memory_utilization=0.85 \
    reward.cerm.engine.max_model_len=16384 \
    reward.cerm.judge.failure.on_failure=neutral \
    "${GRPO_QWEN3_8B_ARGS[@]}" \
    "$@"
