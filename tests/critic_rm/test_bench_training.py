"""``cerm bench --train critic``'s worker on a tiny run: each path in its own process through the real
trainer, the padded one paying for padding, the packed one not; the ratios come out with their targets."""

from __future__ import annotations

import pytest

from cerm_reward.bench.critic_training import (
    MEMORY_TARGET,
    SPEEDUP_TARGET,
    TrainBenchOptions,
    critique_records,
    figures_of,
    run_path,
    train_settings,
)
from cerm_reward.jsonl import write_jsonl
from tests.critic_rm.helpers import LLMBAR, llmbar_pairs

OPTIONS = TrainBenchOptions(
    data=LLMBAR,
    pairs_per_device=2,
    warmup_steps=1,
    steps=1,
    max_query_tokens=32,
    max_response_tokens=48,
    max_critique_tokens=16,
)


@pytest.mark.slow  # trains the 4-layer model on both batch layouts on the CPU: about 15 s on two cores
def test_both_paths_report_real_tokens_padding_and_memory(small_base_model, tmp_path):
    records = critique_records(llmbar_pairs(4))
    write_jsonl(records, tmp_path / "records.jsonl")
    results = {}
    for batching in ("padded", "packed"):
        settings = {**train_settings(OPTIONS, batching, 400), "trainable_layers": 1}  # a short backward pass
        results[batching] = run_path(tmp_path / "records.jsonl", small_base_model, settings, 1, tmp_path / batching)
    padded, packed = results["padded"], results["packed"]
    assert padded["steps"] == packed["steps"] == 1
    assert padded["padding_share"] > 0 and packed["padding_share"] == 0
    for result in results.values():
        assert result["real_tokens"] > 0 and result["tokens_per_s"] > 0 and result["peak_mib"] > 0
    figures = {figure.name: figure for figure in figures_of(padded, packed, OPTIONS, 400, len(records))}
    speedup = figures["tokens/s, packed / padded"]
    assert speedup.value == pytest.approx(packed["tokens_per_s"] / padded["tokens_per_s"])
    assert (
        speedup.target == f">= {SPEEDUP_TARGET:g}" and figures["peak memory, packed / padded"].target == f"<= {MEMORY_TARGET:g}"
    )
