"""Every knob of Critic-RM training, with its default and the reason for it (the judge's own
settings, ``CriticJudgeConfig``, live with the other judges' in :mod:`cerm_reward.config`).

Values marked [reconstructed] in ``docs/critic_rm.md`` are our reading where the paper
gives no number; they are defaults, never constants, so a recipe can change them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import Field

from cerm_reward.config import SamplingConfig
from cerm_reward.frozen import FrozenModel


class BuildConfig(FrozenModel):
    """Stage 1: self-generated critiques, the consistency filter and meta-judge refinement."""

    template: str = "critic-v1"
    critiques_per_response: int = Field(default=4, ge=1)
    """k critiques sampled per (prompt, response); the filter compares their scores."""
    critique: SamplingConfig = SamplingConfig(max_tokens=1024, temperature=0.8)
    """Sampled, not greedy: k greedy critiques would be identical."""
    repair: bool = False
    """A constrained turn asks for the score alone when a critique gave none (weak critics need it)."""
    repair_max_tokens: int = Field(default=16, gt=0)
    score_range: tuple[float, float] = (0.0, 10.0)
    refinement: Literal["rank", "summarise", "none"] = "rank"
    """Meta-judge strategy over each response's consistent critiques (Critic-RM-Rank is the reported variant)."""
    meta: SamplingConfig = SamplingConfig(max_tokens=1024, temperature=0.0)
    rank_constrained: bool = True
    """Constrain the rank answer to ``\\boxed{i}`` with i a valid critique number."""
    concurrency: int = Field(default=8, ge=1)
    """Pairs in flight at once."""
    call_timeout_s: float = Field(default=600.0, gt=0.0)


class LmWeightSchedule(FrozenModel):
    """lm_weight(t) over training progress t in [0, 1] (objective.lm_weight_at)."""

    kind: Literal["constant", "linear", "cosine"] = "cosine"
    start: float = Field(default=1.25, ge=0.0)
    """1.25: the closest public precedent for the critique-loss weight (as a constant)."""
    floor: float = Field(default=0.25, ge=0.0)
    """Where linear and cosine end; ignored by ``constant``."""


class TrainConfig(FrozenModel):
    """Stage 2: joint fine-tuning of critique generation and the reward head."""

    lm_weight: LmWeightSchedule = LmWeightSchedule()
    learning_rate: float = Field(default=1e-5, gt=0.0)
    head_learning_rate: float = Field(default=1e-4, gt=0.0)
    """The head starts from zero-mean noise and needs a larger step than the pretrained body."""
    num_epochs: float = Field(default=1.0, gt=0.0)
    max_steps: int = -1
    """Positive: stop after this many optimizer steps (overrides ``num_epochs``)."""
    batching: Literal["packed", "padded"] = "packed"
    """``packed``: pairs grouped by length under ``tokens_per_device``, each batch one row with no
    padding (:mod:`~cerm_reward.training.critic_rm.packing`); ``padded``: ``pairs_per_device``
    pairs right-padded to their longest sequence, the layout before packing (kept to compare)."""
    tokens_per_device: int = Field(default=16384, gt=0)
    """Packed: tokens of one device's batch (chosen + rejected, all pairs); a longer pair trains alone.
    16,384 holds four pairs at the default limits, the padded default's worst case."""
    pairs_per_device: int = Field(default=4, ge=1)
    """Padded: pairs in one device's batch."""
    gradient_accumulation_steps: int = Field(default=1, ge=1)
    max_query_tokens: int = Field(default=512, gt=0)
    max_response_tokens: int = Field(default=1024, gt=0)
    max_critique_tokens: int = Field(default=1024, gt=0)
    trainable_layers: int | None = None
    """Train only the last N decoder layers (plus final norm and head); ``None`` trains everything."""
    parameter_dtype: Literal["float32", "bfloat16"] = "float32"
    """The LM's parameters, gradients and optimizer moments. ``bfloat16`` halves their memory and
    runs the matrices at the bf16 rate; the reward head and the losses stay fp32. An update smaller
    than about 1/256 of a weight is lost in bf16: at small learning rates keep ``float32`` with
    ``trainer_args: {bf16: true}`` (autocast), or FSDP's mixed precision (``fsdp_reduce_dtype``)."""
    fsdp_reduce_dtype: Literal["float32", "bfloat16"] = "float32"
    """Under FSDP with ``mixed_precision: bf16`` (recipes/critic_rm/accelerate_fsdp.yaml): the dtype
    gradients are reduced in; parameters are gathered and computed in bf16 while the sharded
    master weights stay fp32. accelerate's default reduces in bf16."""
    gradient_checkpointing: bool = False
    """Recompute each decoder layer's activations in the backward pass: about a third more compute
    for activation memory that no longer grows with the layers."""
    bt_on_dropped: bool = True
    """Pairs the consistency filter dropped still train the head (their label is real); only the
    critique loss is restricted to kept pairs."""
    seed: int = 0
    logging_steps: int = Field(default=1, ge=1)
    trainer_args: dict[str, Any] = Field(default_factory=dict)
    """Extra ``transformers.TrainingArguments`` (``bf16``, ``fsdp``, ``deepspeed``, ``report_to``...)."""

    @classmethod
    def from_file(cls, path: str | Path) -> TrainConfig:
        return cls.model_validate(yaml.safe_load(Path(path).read_text()) or {})
