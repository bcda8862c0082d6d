#!/usr/bin/env bash
# Critic-RM end to end on a GPU node: critiques with the base model in vLLM, joint training under
# accelerate (FSDP by default; BACKEND=deepspeed for ZeRO-3), then scoring with the trained model.
#   BASE=meta-llama/Llama-3.1-8B-Instruct DATA=prefs.jsonl OUT=runs/critic-rm bash recipes/critic_rm/train.sh
set -euo pipefail
BASE=${BASE:?base instruct model (hub id or folder)}
DATA=${DATA:?set DATA to preference pairs: a prompt/chosen/rejected JSONL, or FORMAT=llmbar/rm-bench/... data}
FORMAT=${FORMAT:-pairs}
OUT=${OUT:-runs/critic-rm}
BACKEND=${BACKEND:-fsdp}
GPUS=${GPUS:-8}
HERE=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$OUT"

# Stage 1: k = 4 critiques per response, consistency filter, rank-and-keep refinement.
cerm critic build-data "$DATA" --format "$FORMAT" -o "$OUT/critiques.jsonl" \
  --model "$BASE" --critiques 4 --refinement rank --critique-max-tokens 1024

# Stage 2: joint training; the Trainer takes the launcher's processes as they are.
case "$BACKEND" in
  fsdp) LAUNCH_CONFIG="$HERE/accelerate_fsdp.yaml" ;;
  deepspeed) LAUNCH_CONFIG="$HERE/accelerate_deepspeed_zero3.yaml" ;;
  *) echo "BACKEND must be fsdp or deepspeed" >&2; exit 2 ;;
esac
accelerate launch --config_file "$LAUNCH_CONFIG" --num_processes "$GPUS" -m cerm_reward.cli \
  critic train "$OUT/critiques.jsonl" --base-model "$BASE" -c "$HERE/train.yaml" -o "$OUT/model"
# torchrun works the same way: torchrun --nproc_per_node "$GPUS" -m cerm_reward.cli critic train ...

# Stage 3, use it: the critic_rm judge wherever CE-RM runs, e.g.
#   cerm score rollouts.jsonl -o scores.jsonl --judge critic_rm --checkpoint "$OUT/model"
#   python -m verl.trainer.main_ppo reward=critic_rm reward.cerm.judge.checkpoint="$OUT/model" ...
