"""The critic_rm judge on the real engine: critiques by vLLM, scores by a saved head, both interfaces."""

from __future__ import annotations

import statistics

import pytest

from cerm_reward.config import CriticJudgeConfig, SamplingConfig
from cerm_reward.data.loaders import load_llmbar
from cerm_reward.evaluation.scorers import JudgeScorer
from cerm_reward.evaluation.scoring_loop import Scorer, ScoreScope, evaluate
from cerm_reward.evaluation.store import ResultStore
from cerm_reward.judges.critic_rm.judge import CriticRmJudge
from cerm_reward.results import FailureKind
from tests.critic_rm.helpers import LLMBAR

pytestmark = pytest.mark.engine


async def test_k_critiques_are_scored_by_the_head_and_averaged(embedded_engine, checkpoint):
    config = CriticJudgeConfig(checkpoint=str(checkpoint), critiques_per_response=2, critique=SamplingConfig(max_tokens=24))
    judge = CriticRmJudge.open(embedded_engine, config)
    query = "Name a prime number between 10 and 20."
    responses = ["13 is a prime number between 10 and 20.", "15."]
    result = await judge.score_group(query, responses)
    assert [j.index for j in result.judgements] == [0, 1] and result.criteria is None
    for judgement, response in zip(result.judgements, responses, strict=True):
        assert judgement.failure is None and len(judgement.samples) == 2
        assert judgement.usage.completion_tokens > 0 and judgement.evaluation == judgement.samples[0].text
        # the head's score of each (query, response, critique), recomputed apart, then the mean
        q, r = judge.head.cut(query, response)
        expected = judge.head.score([(q, r, sample.text) for sample in judgement.samples])
        assert [s.score for s in judgement.samples] == pytest.approx(expected, abs=1e-5)
        assert judgement.score == pytest.approx(statistics.fmean(expected), abs=1e-5)  # padding differs by batch
    assert judge.stats.groups == 1 and judge.stats.engine_calls == 2


async def test_scorer_interface_runs_in_the_evaluation_harness(embedded_engine, checkpoint, tmp_path):
    judge = CriticRmJudge.open(
        embedded_engine, CriticJudgeConfig(checkpoint=str(checkpoint), critique=SamplingConfig(max_tokens=24))
    )
    scorer = JudgeScorer(judge)
    assert isinstance(scorer, Scorer) and scorer.scope is ScoreScope.RESPONSE and "k=1" in scorer.identity
    items = load_llmbar(LLMBAR)[:2]
    scored, stats = await evaluate(items, scorer, ResultStore(tmp_path / "store.jsonl"))
    assert stats.scored == 2 and not stats.failures
    assert all(isinstance(s.score, float) and s.failure is None for item in scored for s in item.scores)


async def test_a_failed_critique_call_is_a_counted_failure_not_a_score(embedded_engine, checkpoint):
    config = CriticJudgeConfig(checkpoint=str(checkpoint), critique=SamplingConfig(max_tokens=24), call_timeout_s=1e-4)
    judge = CriticRmJudge.open(embedded_engine, config)
    result = await judge.score_group("Say hi.", ["Hi!"])
    [judgement] = result.judgements
    assert judgement.failure is FailureKind.TIMEOUT and judgement.score is None
    assert judge.stats.failures == {"timeout": 1}
