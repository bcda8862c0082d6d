"""Precision and memory options of Critic-RM training, as far as a CPU can run them: one real step
with gradient checkpointing, one with bf16 parameters, and FSDP's reduction dtype on accelerate's plugin."""

from __future__ import annotations

import math

import pytest
import torch
from accelerate.utils import FullyShardedDataParallelPlugin

from cerm_reward.bench.critic_training import critique_records
from cerm_reward.training.critic_rm.config import TrainConfig
from cerm_reward.training.critic_rm.trainer import build_trainer, with_reduce_dtype
from tests.critic_rm.helpers import llmbar_pairs

CONFIG = TrainConfig(
    max_steps=1,
    tokens_per_device=100_000,
    max_query_tokens=48,
    max_response_tokens=64,
    max_critique_tokens=32,
    trainable_layers=1,
    learning_rate=1e-3,
    trainer_args={"dataloader_pin_memory": False},  # no accelerator to pin for
)


@pytest.fixture(scope="module")
def records():
    return critique_records(llmbar_pairs(4))


def _one_step(records, base, folder, **changes):
    """(trainer, the trainable parameters before the step) after one optimizer step."""
    trainer = build_trainer(records, base, folder, CONFIG.model_copy(update=changes))
    before = {n: p.detach().clone() for n, p in trainer.model.named_parameters() if p.requires_grad}
    trainer.train()
    return trainer, before


def _moved(trainer, before) -> set[str]:
    return {n for n, p in trainer.model.named_parameters() if n in before and not torch.equal(p, before[n])}


@pytest.mark.slow  # trains or runs forward passes of the 4-layer model on the CPU: 20 to 70 s on two cores
def test_one_step_with_gradient_checkpointing(records, small_base_model, tmp_path):
    trainer, before = _one_step(records, small_base_model, tmp_path, gradient_checkpointing=True)
    assert trainer.model.lm.is_activation_checkpointing
    (log,) = [entry for entry in trainer.state.log_history if "bt_loss" in entry]
    assert math.isfinite(log["loss"]) and log["critique_nll"] > 0
    assert _moved(trainer, before) == set(before)  # gradients reached every trainable layer through the recomputation


@pytest.mark.slow  # trains or runs forward passes of the 4-layer model on the CPU: 20 to 70 s on two cores
def test_one_step_with_bf16_parameters(records, small_base_model, tmp_path):
    trainer, before = _one_step(records, small_base_model, tmp_path, parameter_dtype="bfloat16")
    model = trainer.model
    assert {p.dtype for p in model.lm.parameters()} == {torch.bfloat16}
    assert {p.dtype for p in model.reward_head.parameters()} == {torch.float32}  # the head stays fp32
    (log,) = [entry for entry in trainer.state.log_history if "bt_loss" in entry]
    assert math.isfinite(log["loss"])
    assert "reward_head.weight" in _moved(trainer, before) and any(n.startswith("lm.") for n in _moved(trainer, before))


@pytest.mark.parametrize("version", [1, 2])
def test_fsdp_bf16_gathers_in_bf16_and_reduces_in_fp32(version):
    plugin = FullyShardedDataParallelPlugin(fsdp_version=version)
    plugin.set_mixed_precision("bf16")  # what accelerate does for `mixed_precision: bf16`
    assert plugin.mixed_precision_policy.reduce_dtype == torch.bfloat16
    with_reduce_dtype(plugin, torch.float32)
    assert plugin.mixed_precision_policy.reduce_dtype == torch.float32
    assert plugin.mixed_precision_policy.param_dtype == torch.bfloat16


def test_precision_keys_are_validated():
    with pytest.raises(ValueError, match="parameter_dtype"):
        TrainConfig(parameter_dtype="float16")
    assert TrainConfig().batching == "packed" and TrainConfig().fsdp_reduce_dtype == "float32"
