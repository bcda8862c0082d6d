#!/usr/bin/env bash
# GRPO with OpenRLHF 0.11.2, rewarded by CE-RM served over HTTP (`judge_server.sh` on JUDGE_HOST).
# The paper's downstream setting: Qwen3-8B policy, 8 rollouts per prompt.
# OpenRLHF's HTTP client cannot send headers, so the token travels in the URL.
# KL as a loss (coefficient 1e-3, the k3 estimator OpenRLHF advises for a loss), as in the verl recipe and the paper.
# REWARD_REMOTE_URL overrides the reward endpoint (train_grpo_cerm_reward_func.sh sets it to a .py file).
set -euo pipefail
JUDGE_URL="http://${JUDGE_HOST:?set JUDGE_HOST}:${CERM_PORT:-8000}/get_reward?token=${CERM_SERVE_TOKEN:?set CERM_SERVE_TOKEN}"

python -m openrlhf.cli.train_ppo_ray \
  --actor.model_name_or_path "${POLICY:-Qwen/Qwen3-8B}" \
  --actor.num_nodes 1 --actor.num_gpus_per_node 8 \
  --ref.num_nodes 1 --ref.num_gpus_per_node 8 \
  --train.colocate_all \
  --vllm.num_engines 4 --vllm.tensor_parallel_size 2 --vllm.gpu_memory_utilization 0.6 --vllm.enable_sleep \
  --reward.remote_url "${REWARD_REMOTE_URL:-$JUDGE_URL}" \
  --algo.advantage.estimator group_norm \
  --rollout.n_samples_per_prompt 8 \
  --rollout.batch_size 128 --rollout.max_new_tokens 2048 --rollout.temperature 1.0 \
  --train.batch_size 1024 --train.micro_batch_size 2 --train.max_epochs 1 --train.num_episodes 1 \
  --actor.adam.lr 1e-6 --algo.kl.use_loss --algo.kl.init_coef 1e-3 --algo.kl.estimator k3 \
  --data.prompt_dataset "${PROMPTS:?set PROMPTS to a jsonl/HF dataset of prompts}" \
  --data.input_key prompt --data.label_key label --data.apply_chat_template --data.max_len 4096 \
  --ds.zero_stage 3 --ds.param_dtype bf16 --actor.gradient_checkpointing_enable \
  --ckpt.path "${CKPT:-./ckpt/grpo-cerm}" --ckpt.save_hf \
  "$@"
