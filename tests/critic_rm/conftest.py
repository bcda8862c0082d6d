"""Real parts for the Critic-RM tests: critiques from the session's vLLM engine on real LLMBar
pairs (the small model and the checkpoint made from it are in the root conftest, which the
hosting tests share)."""

from __future__ import annotations

import pytest

from cerm_reward.training.critic_rm.builder import CritiqueDataBuilder
from tests.critic_rm.helpers import BUILD_CONFIG, PAIRS, llmbar_pairs


@pytest.fixture(scope="session")
async def built(embedded_engine):
    """16 LLMBar pairs through the builder (k = 2, rank refinement): (builder, records)."""
    builder = CritiqueDataBuilder(embedded_engine, BUILD_CONFIG)
    records = await builder.build(llmbar_pairs(PAIRS))
    return builder, records
