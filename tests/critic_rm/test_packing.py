"""Packed batches against padded ones: the grouping, the packed row, the attention, and the
equivalence of the two paths on the embedded model's first layers (CPU, no engine)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from transformers import AutoTokenizer

from cerm_reward.bench.critic_training import critique_records
from cerm_reward.judges.critic_rm.model import CriticRewardModel
from cerm_reward.judges.critic_rm.sequences import IGNORE_INDEX, InputLimits
from cerm_reward.judges.critic_rm.templates import load_critic_template
from cerm_reward.training.critic_rm.attention import VARLEN_SDPA, varlen_sdpa
from cerm_reward.training.critic_rm.config import LmWeightSchedule, TrainConfig
from cerm_reward.training.critic_rm.objective import bradley_terry_loss, critique_nll
from cerm_reward.training.critic_rm.packing import PackedPairCollator, group_by_tokens, pair_tokens, token_budget_packs
from cerm_reward.training.critic_rm.trainer import PairCollator, build_trainer, training_examples
from tests.critic_rm.helpers import llmbar_pairs

LIMITS = InputLimits(48, 64, 32)
PAIRS = 8
TRAINED_PAIRS = 4


@pytest.fixture(scope="module")
def records():
    return critique_records(llmbar_pairs(PAIRS))


@pytest.fixture(scope="module")
def examples(records, small_base_model):
    tokenizer = AutoTokenizer.from_pretrained(str(small_base_model))
    return training_examples(records, tokenizer, load_critic_template("critic-v1"), LIMITS, bt_on_dropped=True)


def test_groups_hold_every_pair_once_within_the_budget():
    sizes = [900, 120, 480, 75, 300, 610, 1500, 40, 220, 330]
    groups = group_by_tokens(sizes, budget=1000, seed=3)
    assert sorted(i for group in groups for i in group) == list(range(len(sizes)))
    for group in groups:
        assert sum(sizes[i] for i in group) <= 1000 or len(group) == 1  # the 1500-token pair trains alone
    assert [6] in groups
    assert len(groups) <= 6  # 4,875 tokens under a 1,000 budget, one pair over it: full packs, not one per pair
    assert group_by_tokens(sizes, 1000, seed=3) == groups


def test_the_packed_row_keeps_sequences_apart(examples):
    batch = PackedPairCollator()([{"pairs": examples[:2]}, {"pairs": examples[2:3]}])
    ids = [e["chosen_input_ids"] for e in examples[:3]] + [e["rejected_input_ids"] for e in examples[:3]]
    bounds = batch["cu_seq_lens"].tolist()
    assert bounds[0] == 0 and len(bounds) == 7 and batch["cu_seq_lens"].dtype == torch.int32
    assert batch["input_ids"].shape == (1, bounds[-1]) == (1, sum(map(len, ids)))
    for sequence, start, end in zip(ids, bounds[:-1], bounds[1:], strict=True):
        assert batch["input_ids"][0, start:end].tolist() == sequence  # chosen sequences first, then rejected
        assert batch["labels"][0, start].item() == IGNORE_INDEX  # never a target across a boundary


def test_varlen_attention_equals_block_diagonal_sdpa():
    torch.manual_seed(0)
    lengths = [5, 9, 3]
    query, key, value = torch.randn(1, 6, 17, 8), torch.randn(1, 2, 17, 8), torch.randn(1, 2, 17, 8)
    bounds = torch.tensor([0, 5, 14, 17], dtype=torch.int32)
    output, _ = varlen_sdpa(torch.nn.Module(), query, key, value, None, cu_seq_lens_q=bounds)
    owner = torch.repeat_interleave(torch.arange(3), torch.tensor(lengths))
    mask = (owner[:, None] == owner[None, :]) & torch.ones(17, 17, dtype=torch.bool).tril()
    expected = F.scaled_dot_product_attention(query, key, value, attn_mask=mask, enable_gqa=True).transpose(1, 2)
    assert output.shape == (1, 17, 6, 8)
    assert torch.allclose(output, expected, atol=1e-6)


@pytest.fixture(scope="module")
def model(small_base_model) -> CriticRewardModel:
    torch.manual_seed(0)
    return CriticRewardModel.from_base(small_base_model, "critic-v1", LIMITS).eval()


@pytest.mark.slow  # trains or runs forward passes of the 4-layer model on the CPU: 20 to 70 s on two cores
def test_packed_forward_equals_padded_forward(examples, model):
    model.lm.set_attn_implementation("sdpa")  # the padded path as it was before packing
    padded = PairCollator(0)(examples)
    packed = PackedPairCollator()([{"pairs": examples}])
    half = len(examples)
    with torch.no_grad():
        rewards, logits, targets = model(padded["input_ids"], padded["attention_mask"], padded["labels"])
        model.lm.set_attn_implementation(VARLEN_SDPA)
        packed_rewards, packed_logits, packed_targets = model(
            packed["input_ids"], None, packed["labels"], cu_seq_lens=packed["cu_seq_lens"]
        )
    assert torch.equal(targets, packed_targets) and targets.numel() > 0
    assert torch.allclose(packed_rewards, rewards, atol=1e-4)
    bt, packed_bt = (
        bradley_terry_loss(rewards[:half], rewards[half:]),
        bradley_terry_loss(packed_rewards[:half], packed_rewards[half:]),
    )
    assert packed_bt.item() == pytest.approx(bt.item(), abs=1e-5)
    assert critique_nll(packed_logits, packed_targets).item() == pytest.approx(critique_nll(logits, targets).item(), abs=1e-4)


@pytest.mark.slow  # trains or runs forward passes of the 4-layer model on the CPU: 20 to 70 s on two cores
def test_the_vocabulary_projection_sees_only_the_critique_positions(examples, model):
    model.lm.set_attn_implementation(VARLEN_SDPA)
    packed = PackedPairCollator()([{"pairs": examples}])
    seen = []
    hook = model.lm.get_output_embeddings().register_forward_hook(lambda _m, inputs, _out: seen.append(inputs[0].shape))
    with torch.no_grad():
        _, logits, targets = model(packed["input_ids"], None, packed["labels"], cu_seq_lens=packed["cu_seq_lens"])
    hook.remove()
    labelled = int((packed["labels"] != IGNORE_INDEX).sum())
    assert seen == [torch.Size([labelled, model.lm.config.hidden_size])]
    assert labelled < packed["input_ids"].numel() / 2  # far fewer rows than a [tokens, vocab] projection
    assert logits.shape == (labelled, model.lm.config.vocab_size) and targets.shape == (labelled,)


def _config(**changes) -> TrainConfig:
    settings = {
        "lm_weight": LmWeightSchedule(kind="constant", start=1.0),
        "learning_rate": 1e-4,
        "head_learning_rate": 1e-3,
        "max_steps": 2,
        "pairs_per_device": TRAINED_PAIRS,
        "trainable_layers": 1,  # a short backward pass: the test is about the batches, not the optimizer
        "trainer_args": {"dataloader_pin_memory": False},  # no accelerator to pin for
        "tokens_per_device": 100_000,
        "max_query_tokens": LIMITS.max_query_tokens,
        "max_response_tokens": LIMITS.max_response_tokens,
        "max_critique_tokens": LIMITS.max_critique_tokens,
    }
    return TrainConfig(**{**settings, **changes})


def _losses(records, base, tmp_path, config: TrainConfig) -> list[dict[str, float]]:
    trainer = build_trainer(records, base, tmp_path / config.batching, config)
    trainer.train()
    return [entry for entry in trainer.state.log_history if "bt_loss" in entry]


@pytest.mark.slow  # trains or runs forward passes of the 4-layer model on the CPU: 20 to 70 s on two cores
def test_packed_training_equals_padded_training(records, small_base_model, tmp_path):
    """Same records, seed and pairs per step (all of them): the same losses at step 1 and, after
    one update, at step 2, so the gradients agree too."""
    few = records[:TRAINED_PAIRS]
    padded = _losses(few, small_base_model, tmp_path, _config(batching="padded"))
    packed = _losses(few, small_base_model, tmp_path, _config(batching="packed"))
    assert [e["step"] for e in packed] == [e["step"] for e in padded] == [1, 2]
    for ours, theirs in zip(packed, padded, strict=True):
        assert ours["bt_loss"] == pytest.approx(theirs["bt_loss"], abs=1e-4)
        assert ours["critique_nll"] == pytest.approx(theirs["critique_nll"], abs=1e-4)
        assert ours["pair_accuracy"] == theirs["pair_accuracy"]


def test_a_token_budget_sets_the_pairs_per_step(records, examples, small_base_model, tmp_path):
    budget = 3 * max(pair_tokens(e) for e in examples)
    trainer = build_trainer(records, small_base_model, tmp_path / "run", _config(tokens_per_device=budget))
    packs = trainer.train_dataset
    assert packs == token_budget_packs(examples, budget, seed=0)
    assert 1 < len(packs) < len(examples)
    assert all(sum(pair_tokens(pair) for pair in pack["pairs"]) <= budget for pack in packs)
    assert trainer.model.lm.config._attn_implementation == VARLEN_SDPA
