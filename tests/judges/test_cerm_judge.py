"""The CE-RM group judge's protocol and failure paths, driven by a scripted engine (exact judge text)."""

import asyncio

import pytest

from cerm_reward import CermJudge, CermJudgeConfig, FailureKind, InvalidInputError
from cerm_reward.config import FailurePolicy
from cerm_reward.engines.base import EngineError, PromptTooLongError
from cerm_reward.judges.cerm.judge import CriteriaUnavailable
from tests.scripted_engine import ScriptedEngine

CRITERIA = "Analysis.\n[Start of Criteria]\n1. Accuracy: correct facts.\n2. Clarity: easy to follow.\n[End of Criteria]"


def response_of(call) -> str:
    return call.messages[2]["content"].split("[Start of Response]\n", 1)[1].rsplit("\n[End of Response]", 1)[0]


def judge_by_response(scores: dict[str, object], *, criteria=CRITERIA, repair_reply="\\boxed{6}"):
    """Criteria turn -> ``criteria``; evaluation of response r -> ``scores[r]`` (text or callable)."""

    def reply(call):
        if call.turn == "criteria":
            return criteria(call) if callable(criteria) else criteria
        if call.turn == "repair":
            return repair_reply
        value = scores[response_of(call)]
        return value(call) if callable(value) else value

    return reply


def make_judge(reply, **config) -> tuple[CermJudge, ScriptedEngine]:
    engine_kwargs = {k: config.pop(k) for k in ("max_model_len", "delay_s") if k in config}
    engine = ScriptedEngine(reply, **engine_kwargs)
    return CermJudge(engine, CermJudgeConfig(**config)), engine


async def test_one_criteria_turn_per_group_and_three_message_evaluations():
    judge, engine = make_judge(judge_by_response({"a": "ok \\boxed{8}", "b": "meh \\boxed{3.5}", "c": "\\boxed{0}"}))
    result = await judge.score_group("Q?", ["a", "b", "c"])
    assert result.scores == [8.0, 3.5, 0.0]
    assert len(engine.turns("criteria")) == 1
    evaluations = engine.turns("evaluation")
    assert len(evaluations) == 3
    for call in evaluations:
        assert [m["role"] for m in call.messages] == ["user", "assistant", "user"]
        assert call.messages[1]["content"] == CRITERIA  # the whole criteria turn, analysis included
        assert call.messages[0] == engine.turns("criteria")[0].messages[0]
    assert result.criteria.items == ("1. Accuracy: correct facts.", "2. Clarity: easy to follow.")
    assert all(j.criteria_id == result.criteria.id and j.failure is None for j in result.judgements)
    assert judge.stats.criteria_generations == 1


async def test_concurrent_groups_for_one_query_share_one_criteria_generation():
    judge, engine = make_judge(judge_by_response({"a": "\\boxed{5}", "b": "\\boxed{6}"}), delay_s=0.05)
    results = await asyncio.gather(*(judge.score_group("  Same query?\r\n", ["a", "b"]) for _ in range(5)))
    await judge.score_group("Same query?", ["a"])
    assert len(engine.turns("criteria")) == 1
    assert sorted(r.criteria_lookup for r in results) == ["joined"] * 4 + ["miss"]
    assert judge.cache.counters.hits == 1 and judge.cache.counters.joined == 4 and judge.cache.counters.misses == 1
    assert len({r.criteria.id for r in results}) == 1


async def test_only_failed_responses_are_resampled():
    attempts = {"bad": 0}

    def flaky(call):
        attempts["bad"] += 1
        return "no score yet" if attempts["bad"] == 1 else "\\boxed{4}"

    judge, engine = make_judge(judge_by_response({"good": "\\boxed{9}", "bad": flaky}))
    result = await judge.score_group("Q", ["good", "bad"])
    assert result.scores == [9.0, 4.0]
    evaluations = engine.turns("evaluation")
    assert [response_of(c) for c in evaluations].count("good") == 1
    assert [response_of(c) for c in evaluations].count("bad") == 2
    resample = [c for c in evaluations if response_of(c) == "bad"][1]
    assert resample.params.temperature == judge.config.failure.resample_temperature > 0
    assert result.judgements[1].samples[0].attempts == 2
    assert judge.stats.attempt_failures == {"no_score": 1}
    assert judge.stats.failures == {}


async def test_repair_turn_yields_a_parseable_score_under_a_regex():
    judge, engine = make_judge(
        judge_by_response({"a": ("rambling " * 20, "length")}),
        failure=FailurePolicy(max_resamples=1, repair=True),
    )
    result = await judge.score_group("Q", ["a"])
    judgement = result.judgements[0]
    assert judgement.score == 6.0 and judgement.failure is None
    assert "repaired" in judgement.flags and judgement.samples[0].repaired
    [repair] = engine.turns("repair")
    assert repair.params.regex is not None and repair.params.temperature == 0.0
    assert repair.messages[3] == {"role": "assistant", "content": "rambling " * 20}
    assert repair.messages[4]["content"] == judge.template.repair
    assert judge.stats.repairs_succeeded == judge.stats.repairs_attempted == 1
    assert judge.stats.attempt_failures == {"truncated": 2}


@pytest.mark.parametrize(("policy", "expected"), [("exclude", None), ("neutral", 5.0), ("minimum", 0.0)])
async def test_terminal_policy_applies_and_keeps_the_kind(policy, expected):
    judge, engine = make_judge(
        judge_by_response({"a": "\\boxed{42}", "b": "\\boxed{7}"}),
        failure=FailurePolicy(max_resamples=2, on_failure=policy),
    )
    result = await judge.score_group("Q", ["a", "b"])
    failed, fine = result.judgements
    assert failed.score == expected and failed.failure is FailureKind.OUT_OF_RANGE
    assert "outside" in failed.failure_detail
    assert fine.score == 7.0 and fine.failure is None
    assert len(engine.turns("evaluation")) == 1 + 3  # b once, a once + 2 resamples
    assert judge.stats.failures == {"out_of_range": 1}


async def test_repair_is_not_tried_without_an_evaluation_text():
    judge, engine = make_judge(
        lambda call: CRITERIA if call.turn == "criteria" else EngineError("server down"),
        failure=FailurePolicy(max_resamples=1, repair=True),
    )
    result = await judge.score_group("Q", ["a"])
    assert result.judgements[0].failure is FailureKind.ENGINE_ERROR
    assert "server down" in result.judgements[0].failure_detail
    assert engine.turns("repair") == []


async def test_timeout_is_a_failure_kind_not_a_hang():
    judge, _ = make_judge(
        judge_by_response({"a": "\\boxed{5}"}), delay_s=0.3, call_timeout_s=0.1, failure=FailurePolicy(max_resamples=0)
    )
    result = await asyncio.wait_for(judge.score_group("Q", ["a"]), 5)
    assert result.criteria is None
    assert result.judgements[0].failure is FailureKind.TIMEOUT and result.judgements[0].score is None


async def test_failed_criteria_fail_the_group_and_are_retried_next_time():
    state = {"down": True}

    def reply(call):
        if call.turn == "criteria" and state["down"]:
            return EngineError("boom")
        return CRITERIA if call.turn == "criteria" else "\\boxed{5}"

    judge, engine = make_judge(reply, failure=FailurePolicy(max_resamples=1))
    first = await judge.score_group("Q", ["a", "b"])
    assert [j.failure for j in first.judgements] == [FailureKind.ENGINE_ERROR] * 2
    assert len(engine.turns("criteria")) == 2 and engine.turns("evaluation") == []
    state["down"] = False
    second = await judge.score_group("Q", ["a", "b"])
    assert second.scores == [5.0, 5.0] and second.criteria_lookup == "miss"


async def test_required_criteria_block():
    judge, _ = make_judge(
        judge_by_response({"a": "\\boxed{5}"}, criteria="just prose"),
        require_criteria_block=True,
        failure=FailurePolicy(max_resamples=0),
    )
    result = await judge.score_group("Q", ["a"])
    assert result.judgements[0].failure is FailureKind.BAD_CRITERIA


@pytest.mark.parametrize(("aggregate", "expected"), [("mean", 6.0), ("median", 5.0)])
async def test_test_time_scaling_aggregates_k_samples(aggregate, expected):
    values = iter(["\\boxed{4}", "\\boxed{5}", "\\boxed{9}"])
    judge, engine = make_judge(judge_by_response({"a": lambda call: next(values)}), samples_per_response=3, aggregate=aggregate)
    result = await judge.score_group("Q", ["a"])
    assert result.scores == [expected]
    [call] = engine.turns("evaluation")
    assert call.params.n == 3 and call.params.temperature == judge.config.scaling_temperature
    assert [s.score for s in result.judgements[0].samples] == [4.0, 5.0, 9.0]


async def test_scaling_tolerates_failed_samples_above_min_valid():
    values = iter(["\\boxed{4}", "no score", "\\boxed{8}"])
    judge, _ = make_judge(
        judge_by_response({"a": lambda call: next(values)}), samples_per_response=3, failure=FailurePolicy(max_resamples=0)
    )
    result = await judge.score_group("Q", ["a"])
    assert result.scores == [6.0] and result.judgements[0].failure is None
    assert [s.failure for s in result.judgements[0].samples] == [None, FailureKind.NO_SCORE, None]


async def test_empty_response_gets_the_configured_score_without_a_call():
    judge, engine = make_judge(judge_by_response({"": "\\boxed{3}", "a": "\\boxed{7}"}))
    result = await judge.score_group("Q", ["   \n", "a"])
    assert result.scores == [0.0, 7.0] and result.judgements[0].flags == ["empty_response"]
    assert len(engine.turns("evaluation")) == 1
    judged, engine = make_judge(judge_by_response({"": "\\boxed{3}"}), empty_response_score=None)
    assert (await judged.score_group("Q", [""])).scores == [3.0]


async def test_overlong_response_is_truncated_with_a_flag_or_failed():
    long_response = " ".join(f"w{i}" for i in range(3000))
    judge, engine = make_judge(
        lambda call: CRITERIA if call.turn == "criteria" else "\\boxed{5}",
        max_model_len=2000,
        evaluation={"max_tokens": 500},
        criteria={"max_tokens": 500},
    )
    result = await judge.score_group("Q", [long_response, "short"])
    truncated, short = result.judgements
    assert truncated.score == 5.0 and truncated.flags == ["response_truncated"] and short.flags == []
    sent = (
        response_of(engine.turns("evaluation")[0])
        if "w0" in response_of(engine.turns("evaluation")[0])
        else response_of(engine.turns("evaluation")[1])
    )
    assert long_response.startswith(sent) and len(sent.split()) < 1500
    assert sum(len(m["content"].split()) for m in engine.turns("evaluation")[0].messages) <= 2000 - 500

    failing, _ = make_judge(
        lambda call: CRITERIA if call.turn == "criteria" else "\\boxed{5}",
        max_model_len=2000,
        evaluation={"max_tokens": 500},
        criteria={"max_tokens": 500},
        overlong_response="fail",
    )
    result = await failing.score_group("Q", [long_response])
    assert result.judgements[0].failure is FailureKind.PROMPT_TOO_LONG


async def test_engine_prompt_too_long_error_maps_to_its_kind():
    judge, _ = make_judge(
        lambda call: CRITERIA if call.turn == "criteria" else PromptTooLongError("too long"),
        failure=FailurePolicy(max_resamples=0),
    )
    assert (await judge.score_group("Q", ["a"])).judgements[0].failure is FailureKind.PROMPT_TOO_LONG


def test_budgets_that_cannot_fit_the_context_are_refused():
    with pytest.raises(ValueError, match="leaves no room"):
        make_judge(lambda call: "", max_model_len=1024)  # default evaluation budget 8192


@pytest.mark.parametrize(
    ("query", "responses", "message"),
    [
        ("", ["a"], "query"),
        ("   ", ["a"], "query"),
        (None, ["a"], "query"),
        ([{"role": "robot", "content": "x"}], ["a"], "role"),
        ("Q", "a single string", "responses"),
        ("Q", [], "responses"),
        ("Q", ["ok", 3], r"responses\[1\]"),
    ],
)
async def test_bad_input_is_refused_with_the_field_named(query, responses, message):
    judge, engine = make_judge(lambda call: CRITERIA)
    with pytest.raises(InvalidInputError, match=message):
        await judge.score_group(query, responses)
    assert engine.calls == []


async def test_chat_query_is_rendered_into_the_query_slot():
    judge, engine = make_judge(judge_by_response({"a": "\\boxed{5}"}))
    await judge.score_group([{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi?"}], ["a"])
    assert "[Start of Query]\nSystem: Be brief.\n\nUser: Hi?\n[End of Query]" in engine.calls[0].messages[0]["content"]
    await judge.score_group([{"role": "user", "content": "Plain?"}], ["a"])
    assert "[Start of Query]\nPlain?\n[End of Query]" in engine.turns("criteria")[1].messages[0]["content"]


async def test_criteria_cut_at_their_budget_are_used_and_flagged():
    judge, engine = make_judge(
        judge_by_response({"a": "\\boxed{5}"}, criteria=("Analysis... [Start of Criteria]\n1. Acc", "length"))
    )
    result = await judge.score_group("Q", ["a"])
    assert result.criteria.truncated and result.criteria.items == ("1. Acc",)
    assert result.scores == [5.0] and result.judgements[0].flags == ["criteria_truncated"]
    assert judge.stats.flags == {"criteria_truncated": 1}


async def test_criteria_generated_elsewhere_can_be_provided():
    judge, engine = make_judge(judge_by_response({"a": "\\boxed{6}"}))
    owner, _ = make_judge(judge_by_response({}))
    criteria, _ = await owner.get_criteria("Q")
    result = await judge.score_group("Q", ["a"], criteria=criteria)
    assert result.criteria_lookup == "provided" and result.criteria is criteria
    assert engine.turns("criteria") == [] and result.scores == [6.0]


async def test_a_prefetched_query_is_never_generated_twice():
    judge, engine = make_judge(judge_by_response({"a": "\\boxed{7}", "b": "\\boxed{3}"}), delay_s=0.05)
    prefetch = judge.prefetch("Q")
    result = await judge.score_group("Q", ["a", "b"])  # arrives while the prefetch is still generating
    await prefetch
    again = await judge.score_group("Q", ["a"])
    assert judge.prefetch("Q") is None  # already cached: nothing to start
    assert len(engine.turns("criteria")) == 1
    assert result.criteria_lookup == "joined" and again.criteria_lookup == "hit"
    assert judge.cache.counters.misses == 1


async def test_a_failed_prefetch_is_retried_by_the_first_request():
    state = {"calls": 0}

    def reply(call):
        if call.turn == "criteria":
            state["calls"] += 1
            return EngineError("cold start") if state["calls"] == 1 else CRITERIA
        return "\\boxed{5}"

    judge, engine = make_judge(reply, failure=FailurePolicy(max_resamples=0))
    with pytest.raises(CriteriaUnavailable):
        await judge.prefetch("Q")  # fails, logged, not cached
    result = await judge.score_group("Q", ["a"])
    assert result.scores == [5.0] and result.criteria_lookup == "miss"
    assert len(engine.turns("criteria")) == 2


async def test_prefetch_rejects_bad_queries_in_the_caller():
    judge, engine = make_judge(lambda call: CRITERIA)
    with pytest.raises(InvalidInputError):
        judge.prefetch("   ")
    assert engine.calls == []
