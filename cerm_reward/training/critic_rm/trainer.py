"""Stage 2 of Critic-RM on ``transformers.Trainer``: joint critique NLL and Bradley-Terry.

``CriticRmTrainer`` only adds what the objective needs: a ``compute_loss`` that reads both
heads, the lm_weight schedule driven by the trainer's own step counter, the loss parts in
the trainer's logs (``bt_loss``, ``critique_nll``, ``lm_weight``, ``pair_accuracy``), a
larger learning rate for the fresh head, FSDP's gradient reduction dtype, and a ``_save``
that writes the Critic-RM checkpoint. Batches are packed rows under a token budget
(:mod:`~cerm_reward.training.critic_rm.packing`) or right-padded pairs (``batching``).
Everything else (devices, DDP/FSDP/DeepSpeed under ``accelerate launch`` or ``torchrun``,
gradient accumulation, mixed precision) is the Trainer's, configured through
``TrainConfig.trainer_args``.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from transformers import AutoTokenizer, Trainer, TrainingArguments

from cerm_reward.errors import InputError
from cerm_reward.judges.critic_rm.model import CriticRewardModel
from cerm_reward.judges.critic_rm.sequences import IGNORE_INDEX, InputLimits, encode
from cerm_reward.judges.critic_rm.templates import CriticTemplate, load_critic_template
from cerm_reward.training.critic_rm.attention import packed_attention
from cerm_reward.training.critic_rm.config import LmWeightSchedule, TrainConfig
from cerm_reward.training.critic_rm.objective import (
    bradley_terry_loss,
    critique_nll,
    joint_loss,
    lm_weight_at,
    pairwise_accuracy,
    training_progress,
)
from cerm_reward.training.critic_rm.packing import PackedPairCollator, token_budget_packs

logger = logging.getLogger(__name__)


def limits_of(config: TrainConfig) -> InputLimits:
    return InputLimits(config.max_query_tokens, config.max_response_tokens, config.max_critique_tokens)


def training_examples(
    records: Sequence[dict[str, Any]], tokenizer: Any, template: CriticTemplate, limits: InputLimits, *, bt_on_dropped: bool
) -> list[dict[str, list[int]]]:
    """One example per usable record; the critique NLL covers kept pairs only."""
    examples = []
    for record in records:
        if not record["kept"] and not bt_on_dropped:
            continue
        sides = {}
        for side in ("chosen", "rejected"):
            encoded = encode(
                tokenizer, template, limits, record["prompt"], record[side], record[f"{side}_critique"], train_lm=record["kept"]
            )
            sides[f"{side}_input_ids"], sides[f"{side}_labels"] = encoded.input_ids, encoded.labels
        examples.append(sides)
    return examples


@dataclass(frozen=True)
class PairCollator:
    """Right-pads a batch of pairs into one tensor: the B chosen sequences, then the B rejected."""

    pad_token_id: int

    def __call__(self, features: list[dict[str, list[int]]]) -> dict[str, torch.Tensor]:
        ids = [f["chosen_input_ids"] for f in features] + [f["rejected_input_ids"] for f in features]
        labels = [f["chosen_labels"] for f in features] + [f["rejected_labels"] for f in features]
        width = max(len(x) for x in ids)
        return {
            "input_ids": torch.tensor([x + [self.pad_token_id] * (width - len(x)) for x in ids]),
            "attention_mask": torch.tensor([[1] * len(x) + [0] * (width - len(x)) for x in ids]),
            "labels": torch.tensor([x + [IGNORE_INDEX] * (width - len(x)) for x in labels]),
        }


class CriticRmTrainer(Trainer):
    def __init__(
        self,
        *args: Any,
        lm_weight: LmWeightSchedule,
        head_learning_rate: float,
        fsdp_reduce_dtype: torch.dtype = torch.float32,
        **kwargs: Any,
    ) -> None:
        self.fsdp_reduce_dtype = fsdp_reduce_dtype  # read while the parent builds the accelerator
        super().__init__(*args, **kwargs)
        self.lm_weight_schedule = lm_weight
        self.head_learning_rate = head_learning_rate
        self._sums: dict[str, float] = {}
        self._count = 0

    def current_lm_weight(self) -> float:
        return lm_weight_at(self.lm_weight_schedule, training_progress(self.state.global_step, self.state.max_steps))

    def compute_loss(
        self, model: Any, inputs: dict[str, torch.Tensor], return_outputs: bool = False, num_items_in_batch: Any = None
    ):
        weight = self.current_lm_weight()
        labels = inputs["labels"] if weight > 0 else None
        rewards, logits, targets = model(
            inputs["input_ids"], inputs.get("attention_mask"), labels, cu_seq_lens=inputs.get("cu_seq_lens")
        )
        half = rewards.size(0) // 2
        bt = bradley_terry_loss(rewards[:half], rewards[half:])
        nll = critique_nll(logits, targets)
        loss = joint_loss(bt, nll, weight)
        if model.training:
            parts = {
                "bt_loss": bt.item(),
                "critique_nll": nll.item(),
                "lm_weight": weight,
                "pair_accuracy": pairwise_accuracy(rewards[:half], rewards[half:]),
            }
            for key, value in parts.items():
                self._sums[key] = self._sums.get(key, 0.0) + value
            self._count += 1
        return (loss, {"rewards": rewards}) if return_outputs else loss

    def log(self, logs: dict[str, float], *args: Any, **kwargs: Any) -> None:
        if self._count and "loss" in logs:
            logs.update({key: round(total / self._count, 6) for key, total in self._sums.items()})
            self._sums, self._count = {}, 0
        super().log(logs, *args, **kwargs)

    def create_optimizer(self, *args: Any, **kwargs: Any):
        if self.optimizer is None:
            head = [p for n, p in self.model.named_parameters() if n.startswith("reward_head.") and p.requires_grad]
            body = [p for n, p in self.model.named_parameters() if not n.startswith("reward_head.") and p.requires_grad]
            groups = [{"params": body, "lr": self.args.learning_rate}, {"params": head, "lr": self.head_learning_rate}]
            self.optimizer = torch.optim.AdamW(
                [g for g in groups if g["params"]],
                lr=self.args.learning_rate,
                weight_decay=self.args.weight_decay,
                fused=fused_adamw_fits(body + head),
            )
        return self.optimizer

    def create_accelerator_and_postprocess(self) -> None:
        super().create_accelerator_and_postprocess()
        plugin = getattr(self.accelerator.state, "fsdp_plugin", None)
        if plugin is not None:
            with_reduce_dtype(plugin, self.fsdp_reduce_dtype)

    def _save(self, output_dir: str | None = None, state_dict: dict[str, torch.Tensor] | None = None) -> None:
        model = self.accelerator.unwrap_model(self.model)
        model.save(output_dir or self.args.output_dir, self.processing_class, state_dict=state_dict)


FUSED_ADAMW_DEVICES = ("cpu", "cuda")


def fused_adamw_fits(parameters: Sequence[torch.Tensor]) -> bool:
    """Whether AdamW can take its fused kernel: one pass per tensor instead of the per-tensor loop
    of about ten elementwise operations that torch uses on a CPU (its default picks ``foreach``
    only on accelerators). On the training bench's CPU the loop cost 1.5 CPU-seconds a step, the
    fused kernel 0.26, for the same update up to rounding."""
    return bool(parameters) and all(
        p.device.type in FUSED_ADAMW_DEVICES and p.dtype in (torch.float32, torch.bfloat16, torch.float16) for p in parameters
    )


def with_reduce_dtype(plugin: Any, dtype: torch.dtype) -> None:
    """Reduce FSDP's gradients in ``dtype`` when its mixed precision computes in bf16 or fp16.

    accelerate's ``mixed_precision: bf16`` reduces gradients in bf16 too, which sums 8-bit
    mantissas across ranks; fp32 reduction keeps the sum exact for the cost of twice the bytes.
    """
    policy = plugin.mixed_precision_policy
    if policy is not None and getattr(policy, "reduce_dtype", None) is not None:
        plugin.mixed_precision_policy = dataclasses.replace(policy, reduce_dtype=dtype)


def build_trainer(
    records: Sequence[dict[str, Any]], base_model: str | Path, output_dir: str | Path, config: TrainConfig
) -> CriticRmTrainer:
    """A ready trainer: tokenizer and model from ``base_model``, examples from build records."""
    if not records:
        raise InputError("no training records")
    template_version = records[0]["provenance"]["template"]
    template = load_critic_template(template_version)
    tokenizer = AutoTokenizer.from_pretrained(str(base_model))
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    limits = limits_of(config)
    examples = training_examples(records, tokenizer, template, limits, bt_on_dropped=config.bt_on_dropped)
    if not examples:
        raise InputError("no usable pairs: every record was dropped by the filter and bt_on_dropped is off")
    torch.manual_seed(config.seed)
    model = CriticRewardModel.from_base(base_model, template_version, limits, dtype=getattr(torch, config.parameter_dtype))
    if config.trainable_layers is not None:
        model.freeze_all_but_last(config.trainable_layers)
    if config.gradient_checkpointing:
        # non-reentrant: frozen embeddings (trainable_layers) give inputs without grad, which the
        # reentrant variant would silently cut out of the backward pass
        model.lm.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
    arguments = TrainingArguments(
        output_dir=str(output_dir),
        per_device_train_batch_size=config.pairs_per_device if config.batching == "padded" else 1,
        gradient_accumulation_steps=config.gradient_accumulation_steps,
        learning_rate=config.learning_rate,
        num_train_epochs=config.num_epochs,
        max_steps=config.max_steps,
        logging_steps=config.logging_steps,
        save_strategy="no",
        seed=config.seed,
        remove_unused_columns=False,
        **{"report_to": [], **config.trainer_args},  # no tracker unless the recipe names one (its report_to wins)
    )
    logger.info("critic-rm: %d training pairs (%d kept by the filter)", len(examples), sum(r["kept"] for r in records))
    if config.batching == "packed":
        model.lm.set_attn_implementation(packed_attention(arguments.device))
        dataset: Sequence[Any] = token_budget_packs(examples, config.tokens_per_device, config.seed)
        collator: Any = PackedPairCollator()
    else:
        dataset, collator = examples, PairCollator(tokenizer.pad_token_id)
    return CriticRmTrainer(
        model=model,
        args=arguments,
        train_dataset=dataset,
        data_collator=collator,
        processing_class=tokenizer,
        lm_weight=config.lm_weight,
        head_learning_rate=config.head_learning_rate,
        fsdp_reduce_dtype=getattr(torch, config.fsdp_reduce_dtype),
    )
