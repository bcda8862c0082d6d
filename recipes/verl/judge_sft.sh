#!/usr/bin/env bash
# Step 1 of training a CE-RM judge: the SFT warm start (CE-RM paper: batch 64, lr 1e-5, 3 epochs),
# with verl's own SFT trainer on judge conversations distilled from a stronger judge.
#
#   # a teacher judge behind an OpenAI-compatible server (here CE-RM-4B; any stronger judge works)
#   vllm serve PKU-ONELab/CE-RM-4B --served-model-name ce-rm-4b --enable-prefix-caching &
#   cerm train distill-sft pairs.jsonl -o $DATA/judge_sft.parquet -c recipes/judge/ce-rm-4b-http.yaml
#   DATA=$HOME/data/cerm-judge bash recipes/verl/judge_sft.sh
#
# The checkpoint's huggingface/ folder (hf_model in save_contents) is what judge_grpo.sh starts from.
# verl's SFT trainer batches dynamically (data.use_dynamic_bsz): micro-batches are cut by
# data.max_token_len_per_gpu, which must hold the longest sample (data.max_length); no micro-batch size applies.
# Extra arguments are passed on to verl.
set -euo pipefail
DATA=${DATA:-$HOME/data/cerm-judge}
BASE=${BASE:-Qwen/Qwen3-4B-Instruct-2507}
GPUS=${GPUS:-8}

exec torchrun --standalone --nnodes=1 --nproc_per_node="$GPUS" -m verl.trainer.sft_trainer \
    data.train_files="$DATA/judge_sft.parquet" \
    data.messages_key=messages \
    data.train_batch_size=64 \
    data.max_length=16384 \
    data.max_token_len_per_gpu=16384 \
    data.truncation=right \
    model.path="$BASE" \
    optim.lr=1e-5 \
    trainer.total_epochs=3 \
    trainer.project_name=cerm-judge \
    trainer.experiment_name=sft \
    trainer.logger='[console,wandb]' \
    'checkpoint.save_contents=[model,optimizer,extra,hf_model]' \
    "$@"
