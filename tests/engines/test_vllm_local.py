"""The judge on the real in-process vLLM engine with the embedded model (short budgets)."""

import asyncio

import pytest

from cerm_reward import CermJudge, CermJudgeConfig, FailureKind
from cerm_reward.config import FailurePolicy
from cerm_reward.engines.base import GenerationParams, PromptTooLongError
from cerm_reward.engines.embedded import EMBEDDED_MODEL_ID
from cerm_reward.judges.parsing import parse_evaluation
from cerm_reward.judges.repair import score_regex

pytestmark = pytest.mark.engine
QUERY = "What is the capital of Australia?"
GROUP = ["Canberra is the capital of Australia.", "Sydney.", "I am not sure.", "The capital is Canberra, chosen in 1908."]


def small(**overrides) -> CermJudgeConfig:
    settings = {
        "criteria": {"max_tokens": 48},
        "evaluation": {"max_tokens": 48},
        "call_timeout_s": 240,
        "failure": FailurePolicy(max_resamples=0, repair=True),
    }
    settings.update(overrides)
    return CermJudgeConfig(**settings)


async def test_engine_identity_and_structured_output(embedded_engine):
    assert embedded_engine.model_id == EMBEDDED_MODEL_ID
    assert embedded_engine.max_model_len == 4096
    result = await embedded_engine.chat(
        [{"role": "user", "content": "Rate 2+2=4 from 0 to 10."}],
        GenerationParams(max_tokens=12, temperature=0.8, n=3, regex=score_regex((0, 10))),
    )
    assert len(result.completions) == 3 and result.prompt_tokens > 0
    for completion in result.completions:
        assert parse_evaluation(completion.text).score is not None, completion.text


async def test_prompt_longer_than_the_context_is_refused(embedded_engine):
    with pytest.raises(PromptTooLongError):
        await embedded_engine.chat([{"role": "user", "content": "word " * 5000}], GenerationParams(max_tokens=4))


async def test_group_uses_one_criteria_generation_and_repair_gives_scores(embedded_engine):
    judge = CermJudge(embedded_engine, small())
    result = await judge.score_group(QUERY, GROUP)
    assert judge.stats.criteria_generations == 1 and result.criteria_lookup == "miss"
    assert len(result.judgements) == len(GROUP)
    for judgement in result.judgements:
        assert judgement.failure is None, judgement.failure_detail
        assert 0.0 <= judgement.score <= 10.0
        assert judgement.criteria_id == result.criteria.id and judgement.criteria == result.criteria.text
        assert judgement.usage.prompt_tokens > 0 and judgement.latency_s > 0
    # A 48-token evaluation cannot hold CE-RM's per-criterion analysis: every score came from the repair turn.
    assert judge.stats.repairs_attempted == judge.stats.repairs_succeeded == len(GROUP)
    assert all("repaired" in j.flags for j in result.judgements)
    # The group's evaluation prompts share [template, query, criteria]: the engine's prefix cache served some.
    assert sum(j.usage.cached_prompt_tokens for j in result.judgements) > 0


async def test_concurrent_groups_share_one_criteria_generation(embedded_engine):
    judge = CermJudge(embedded_engine, small(evaluation={"max_tokens": 8}, failure=FailurePolicy(max_resamples=0)))
    results = await asyncio.gather(*(judge.score_group("Name a prime number.", ["7", "9"]) for _ in range(3)))
    assert judge.stats.criteria_generations == 1
    assert sorted(r.criteria_lookup for r in results) == ["joined", "joined", "miss"]
    assert len({r.criteria.id for r in results}) == 1


async def test_terminal_policy_applies_when_the_judge_fails(embedded_engine):
    judge = CermJudge(
        embedded_engine,
        small(evaluation={"max_tokens": 4}, failure=FailurePolicy(max_resamples=1, on_failure="minimum")),
    )
    result = await judge.score_group(QUERY, GROUP[:2])
    for judgement in result.judgements:
        assert judgement.failure in (FailureKind.TRUNCATED, FailureKind.NO_SCORE)
        assert judgement.score == 0.0 and judgement.failure_detail
        assert [s.attempts for s in judgement.samples] == [2]
    assert judge.stats.resampled == 2 and sum(judge.stats.failures.values()) == 2


async def test_overlong_response_is_cut_to_the_real_context(embedded_engine):
    judge = CermJudge(embedded_engine, small(evaluation={"max_tokens": 4}, failure=FailurePolicy(max_resamples=0)))
    result = await judge.score_group(QUERY, ["Canberra " * 6000])
    [judgement] = result.judgements
    assert "response_truncated" in judgement.flags
    assert judgement.failure in (None, FailureKind.TRUNCATED, FailureKind.NO_SCORE)
    assert judgement.usage.prompt_tokens <= 4096 - 4
