"""Real parts for the Critic-RM tests: critiques from the session's vLLM engine on real LLMBar
pairs, and a small causal LM made locally from the embedded judge's own weights."""

from __future__ import annotations

from pathlib import Path

import pytest

from cerm_reward.critic_rm.builder import CritiqueDataBuilder
from cerm_reward.critic_rm.model import CriticRewardModel
from cerm_reward.critic_rm.sequences import InputLimits
from tests.critic_rm.helpers import BUILD_CONFIG, PAIRS, SMALL_LAYERS, llmbar_pairs


@pytest.fixture(scope="session")
async def built(embedded_engine):
    """16 LLMBar pairs through the builder (k = 2, rank refinement): (builder, records)."""
    builder = CritiqueDataBuilder(embedded_engine, BUILD_CONFIG)
    records = await builder.build(llmbar_pairs(PAIRS))
    return builder, records


@pytest.fixture(scope="session")
def small_base_model(tmp_path_factory) -> Path:
    """The embedded checkpoint cut to its first ``SMALL_LAYERS`` decoder layers, saved as a normal checkpoint."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from cerm_reward.engines.embedded import embedded_checkpoint

    source = embedded_checkpoint()
    model = AutoModelForCausalLM.from_pretrained(str(source), dtype=torch.float32)
    model.model.layers = model.model.layers[:SMALL_LAYERS]
    model.config.num_hidden_layers = SMALL_LAYERS
    target = tmp_path_factory.mktemp("smollm2-4-layers")
    model.save_pretrained(target)
    AutoTokenizer.from_pretrained(str(source)).save_pretrained(target)
    return target


@pytest.fixture(scope="session")
def checkpoint(small_base_model, tmp_path_factory):
    """A Critic-RM checkpoint (untrained head) written by the same save path training uses."""
    from transformers import AutoTokenizer

    folder = tmp_path_factory.mktemp("critic-checkpoint")
    model = CriticRewardModel.from_base(small_base_model, "critic-v1", InputLimits(48, 48, 32))
    return model.save(folder, AutoTokenizer.from_pretrained(str(small_base_model)))
