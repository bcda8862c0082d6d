#!/usr/bin/env bash
# Train a CE-RM judge with OpenRLHF 0.11.2 through the two-stage AgentExecutor (docs/training.md):
# each sample is one sequence [criteria | e+ | e-] of a preference pair, 4 samples per pair
# (the paper's K_c = 4) normalised together by group_norm; lr 2e-6 and a KL loss of 1e-3 as in the paper
# (k3, the estimator OpenRLHF advises for a KL loss).
#
#   cerm train prepare-data pairs.jsonl --openrlhf-output $PAIRS --tokenizer $SFT --max-prompt-length 8192
#   PAIRS=$PAIRS SFT=path/to/warm-started/judge bash recipes/openrlhf/train_judge_agent.sh
#
# The rows' prompt is the raw query (the executor renders the judge's prompts itself: no
# --data.apply_chat_template). CERM_TRAINING_CONFIG may name a TwoStageSettings YAML; in a Ray
# job give it to the actors through the runtime env. --ckpt.save_hf writes the folder the judge serves.
set -euo pipefail
AGENT_FILE="$(cerm train openrlhf-agent)"

python -m openrlhf.cli.train_ppo_ray \
  --actor.model_name_or_path "${SFT:?set SFT to the warm-started judge}" \
  --actor.num_nodes 1 --actor.num_gpus_per_node 8 \
  --ref.num_nodes 1 --ref.num_gpus_per_node 8 \
  --train.colocate_all \
  --vllm.num_engines 8 --vllm.tensor_parallel_size 1 --vllm.gpu_memory_utilization 0.6 --vllm.enable_sleep \
  --train.agent_func_path "$AGENT_FILE" \
  --algo.advantage.estimator group_norm \
  --rollout.n_samples_per_prompt 4 \
  --rollout.batch_size 64 --rollout.max_new_tokens 4096 --rollout.temperature 1.0 \
  --train.batch_size 256 --train.micro_batch_size 2 --train.max_epochs 1 --train.num_episodes 1 \
  --actor.adam.lr 2e-6 --algo.kl.use_loss --algo.kl.init_coef 1e-3 --algo.kl.estimator k3 \
  --data.prompt_dataset "${PAIRS:?set PAIRS to the jsonl of cerm train prepare-data --openrlhf-output}" \
  --data.input_key prompt --data.label_key label --data.max_len 16384 \
  --ds.zero_stage 3 --ds.param_dtype bf16 --actor.gradient_checkpointing_enable \
  --ckpt.path "${CKPT:-./ckpt/cerm-judge-openrlhf}" --ckpt.save_hf \
  "$@"
