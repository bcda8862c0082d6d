#!/usr/bin/env bash
# Step 2 of training a CE-RM judge: RL with the two-stage rollout (docs/training.md).
# The config `cerm_judge_trainer` carries the CE-RM paper's numbers: lr 2e-6, KL loss 1e-3,
# 4 mini-batches of 64 pairs per step, 4 criteria + 16 evaluations = 20 trajectories per pair,
# advantages grouped by criteria / chosen / rejected (estimator cerm_precomputed).
#
#   cerm train prepare-data pairs.jsonl --verl-output $DATA/judge_train.parquet \
#       --tokenizer $SFT --max-prompt-length 8192 --criteria-max-tokens 2048 \
#       [--difficulty-rounds 4 --model $SFT]       # keep pairs the current judge finds neither easy nor hopeless
#   cerm train prepare-data heldout.jsonl --verl-output $DATA/judge_val.parquet --tokenizer $SFT --split test
#   DATA=$HOME/data/cerm-judge SFT=checkpoints/cerm-judge/sft/global_step_N/huggingface bash recipes/verl/judge_grpo.sh
#
# The trained judge is served as it is saved (hf_model in save_contents):
#   cerm score rollouts.jsonl -o scores.jsonl --model checkpoints/cerm-judge/grpo/global_step_N/actor/huggingface
# Dynamic batching: micro-batches are cut by ppo_max_token_len_per_gpu (log-prob passes inherit it), which
# must hold max_prompt_length + max_response_length; micro-batch sizes would be ignored, so none are set.
# Extra arguments are passed on to verl (e.g. --cfg job to print the composed config).
set -euo pipefail
DATA=${DATA:-$HOME/data/cerm-judge}
SFT=${SFT:?set SFT to the warm-started checkpoint (the huggingface/ folder of judge_sft.sh)}
GPUS=${GPUS:-8}
PYTHON=${PYTHON:-python3}

exec "$PYTHON" -m verl.trainer.main_ppo --config-name cerm_judge_trainer \
    data.train_files="$DATA/judge_train.parquet" \
    data.val_files="$DATA/judge_val.parquet" \
    actor_rollout_ref.model.path="$SFT" \
    critic.enable=False \
    actor_rollout_ref.model.use_remove_padding=True \
    actor_rollout_ref.model.enable_gradient_checkpointing=True \
    actor_rollout_ref.actor.ppo_max_token_len_per_gpu=24576 \
    actor_rollout_ref.actor.use_dynamic_bsz=True \
    actor_rollout_ref.rollout.name=vllm \
    actor_rollout_ref.rollout.tensor_model_parallel_size=1 \
    actor_rollout_ref.rollout.gpu_memory_utilization=0.6 \
    'actor_rollout_ref.actor.checkpoint.save_contents=[model,optimizer,extra,hf_model]' \
    trainer.n_gpus_per_node="$GPUS" \
    trainer.nnodes=1 \
    trainer.project_name=cerm-judge \
    trainer.experiment_name=grpo \
    trainer.logger='[console,wandb]' \
    trainer.save_freq=50 \
    trainer.test_freq=25 \
    trainer.total_epochs=1 \
    "$@"
