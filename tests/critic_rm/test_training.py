"""A short real training run: builder records from the engine, a 4-layer SmolLM2 made locally, the
Trainer on packed batches (the default)."""

from __future__ import annotations

import statistics

import pytest
import torch

from cerm_reward.judges.critic_rm.head_scorer import HeadScorer
from cerm_reward.judges.critic_rm.model import HEAD_CONFIG, HEAD_DIR, HEAD_WEIGHTS
from cerm_reward.training.critic_rm.config import LmWeightSchedule, TrainConfig
from cerm_reward.training.critic_rm.objective import critique_nll, lm_weight_at
from cerm_reward.training.critic_rm.trainer import PairCollator, build_trainer

pytestmark = pytest.mark.engine

STEPS = 24
CONFIG = TrainConfig(
    lm_weight=LmWeightSchedule(kind="linear", start=1.0, floor=0.2),
    learning_rate=2e-4,
    head_learning_rate=2e-3,
    max_steps=STEPS,
    tokens_per_device=1024,  # two to four pairs a step at these limits
    max_query_tokens=48,
    max_response_tokens=48,
    max_critique_tokens=40,
    trainable_layers=2,
)


def _triples(records):
    chosen = [(r["prompt"], r["chosen"], r["chosen_critique"]) for r in records]
    rejected = [(r["prompt"], r["rejected"], r["rejected_critique"]) for r in records]
    return chosen, rejected


def _accuracy(scorer, records) -> float:
    chosen, rejected = _triples(records)
    scores = scorer.score(chosen + rejected)
    half = len(chosen)
    return sum(c > r for c, r in zip(scores[:half], scores[half:], strict=True)) / half


def _kept_critique_nll(trainer) -> float:
    """Critique NLL of the kept pairs, measured with the model as it is now."""
    pairs = [pair for pack in trainer.train_dataset for pair in pack["pairs"]]
    kept = [pair for pair in pairs if any(label != -100 for label in pair["chosen_labels"])]
    batch = PairCollator(trainer.processing_class.pad_token_id)(kept)
    model = trainer.model.eval()
    with torch.no_grad():
        _, logits, targets = model(batch["input_ids"], batch["attention_mask"], batch["labels"])
    return critique_nll(logits, targets).item()


async def test_joint_training_learns_the_pairs_follows_the_schedule_and_reloads(built, small_base_model, tmp_path):
    _, records = built
    assert any(r["kept"] for r in records), "the critique loss needs at least one pair the filter kept"
    trainer = build_trainer(records, small_base_model, tmp_path / "run", CONFIG)
    assert sum(len(pack["pairs"]) for pack in trainer.train_dataset) == len(records)  # dropped pairs train the head too
    scorer = HeadScorer(trainer.model, trainer.processing_class, device="cpu")
    accuracy_before = _accuracy(scorer, records)
    nll_before = _kept_critique_nll(trainer)

    trainer.train()

    logs = [entry for entry in trainer.state.log_history if "bt_loss" in entry]
    assert [entry["step"] for entry in logs] == list(range(1, STEPS + 1))
    for entry in logs:  # the weight of step s is the schedule at the progress before its update
        assert entry["lm_weight"] == pytest.approx(lm_weight_at(CONFIG.lm_weight, (entry["step"] - 1) / STEPS), abs=1e-6)
    first, last = logs[:4], logs[-4:]
    assert statistics.fmean(e["loss"] for e in last) < statistics.fmean(e["loss"] for e in first)
    assert statistics.fmean(e["bt_loss"] for e in last) < statistics.fmean(e["bt_loss"] for e in first)
    nll_after = _kept_critique_nll(trainer)
    assert nll_after < nll_before
    accuracy_after = _accuracy(scorer, records)
    assert accuracy_after >= 0.75  # chance is 0.5

    trainer.save_model(str(tmp_path / "checkpoint"))
    saved = tmp_path / "checkpoint"
    assert (saved / "config.json").is_file() and (saved / HEAD_DIR / HEAD_WEIGHTS).is_file()
    assert (saved / HEAD_DIR / HEAD_CONFIG).is_file() and not list(saved.glob("reward_head*.safetensors"))
    chosen, rejected = _triples(records)
    reloaded = HeadScorer.load(saved, device="cpu")
    assert reloaded.score(chosen + rejected) == pytest.approx(scorer.score(chosen + rejected), abs=1e-5)
    print(
        f"\ncritic-rm training: {len(records)} pairs ({sum(r['kept'] for r in records)} kept), {STEPS} steps; "
        f"accuracy {accuracy_before:.2f} -> {accuracy_after:.2f}; kept-critique NLL {nll_before:.3f} -> {nll_after:.3f}; "
        f"loss {logs[0]['loss']:.3f} -> {logs[-1]['loss']:.3f}; bt {logs[0]['bt_loss']:.3f} -> {logs[-1]['bt_loss']:.3f}"
    )
