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
source "$(dirname "${BASH_SOURCE[0]}")/grpo_qwen3_8b_args.sh"
JUDGE_REPLICAS=${JUDGE_REPLICAS:-8}
exec "$PYTHON" -m cerm_reward.integrations.verl.main_ppo \
    reward_model=cerm \
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
    "${GRPO_QWEN3_8B_ARGS[@]}" \
    "$@"
