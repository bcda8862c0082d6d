"""The critique data builder: the filter by hand, then real LLMBar pairs through the real engine."""

from __future__ import annotations

import statistics

import pytest

from cerm_reward.config import SamplingConfig
from cerm_reward.data.pairs import PreferencePair
from cerm_reward.errors import InputError
from cerm_reward.jsonl import write_jsonl
from cerm_reward.judges.critic_rm.templates import fill, load_critic_template
from cerm_reward.judges.parsing import parse_evaluation
from cerm_reward.judges.repair import score_regex
from cerm_reward.judges.templates import load_template
from cerm_reward.results import FailureKind
from cerm_reward.training.critic_rm.builder import (
    RECORD_FORMAT,
    CritiqueDataBuilder,
    CritiqueSample,
    consistency_filter,
    parse_rank,
    read_build_records,
)
from cerm_reward.training.critic_rm.config import BuildConfig
from tests.critic_rm.helpers import BUILD_CONFIG, PAIRS, llmbar_pairs
from tests.scripted_engine import ScriptedEngine


def _samples(*scores):
    return [CritiqueSample(f"critique {i}", s, None if s is not None else "no_score") for i, s in enumerate(scores)]


def test_filter_keeps_a_pair_whose_mean_scores_agree_and_marks_consistent_critiques():
    decision = consistency_filter(_samples(8, 5, None), _samples(4, 7))
    # chosen mean (8 + 5) / 2 = 6.5 > rejected mean 5.5; chosen 8 > 5.5, 5 is not; rejected 4 < 6.5, 7 is not
    assert decision.kept and decision.reason == "agrees"
    assert (decision.chosen_mean, decision.rejected_mean) == (6.5, 5.5)
    assert decision.consistent_chosen == [0] and decision.consistent_rejected == [0]


@pytest.mark.parametrize(
    ("chosen", "rejected", "reason"),
    [
        ((5, 5), (4, 6), "tie"),
        ((3,), (4, 9), "disagrees"),
        ((None, None), (4,), "no_valid_chosen_score"),
        ((4,), (None,), "no_valid_rejected_score"),
    ],
)
def test_filter_drops_ties_disagreements_and_pairs_without_scores(chosen, rejected, reason):
    decision = consistency_filter(_samples(*chosen), _samples(*rejected))
    assert not decision.kept and decision.reason == reason
    assert decision.consistent_chosen == decision.consistent_rejected == []


def test_rank_answers_are_parsed_or_counted_as_failures():
    assert parse_rank("Review 2 is best. \\boxed{2}", 3) == (1, None, None)
    assert parse_rank("\\boxed{4}", 3)[1] is FailureKind.OUT_OF_RANGE
    assert parse_rank("the second one", 3)[1] is FailureKind.NO_SCORE


def test_slots_are_filled_in_one_pass():
    assert fill("{query} / {response}", query="say {response}", response="ok") == "say {response} / ok"
    messages = load_critic_template().rank_messages("Q", "R", ["first", "second"])
    assert "[Start of Review 2]\nsecond\n[End of Review 2]" in messages[0]["content"]


async def test_scripted_critic_a_critique_without_a_score_is_repaired_by_the_shared_repair_turn():
    """Scripted engine (exact critic text): the builder's repair turn is CE-RM's, and counted on the builder."""
    template = load_critic_template()

    def reply(call):
        if len(call.messages) == 3:  # critique, its reply, the repair request
            return "\\boxed{2}" if "worse answer" in call.messages[0]["content"] else "\\boxed{9}"
        return "A critique that forgot its score."

    engine = ScriptedEngine(reply)
    config = BuildConfig(critiques_per_response=1, repair=True, refinement="none")
    pair = PreferencePair("p", "Which is better?", "better answer", "worse answer", "test", "test")
    builder = CritiqueDataBuilder(engine, config, template)
    [record] = await builder.build([pair])

    [chosen] = record["provenance"]["chosen_samples"]
    assert (chosen["score"], chosen["failure"], chosen["repaired"]) == (9.0, None, True)
    assert chosen["detail"] == "repaired after no_score: \\boxed{9}"
    assert record["kept"] and record["id"] == "p" and record["prompt"] == "Which is better?"
    repair_calls = [call for call in engine.calls if len(call.messages) == 3]
    assert len(repair_calls) == 2
    assert repair_calls[0].messages[1:] == [
        {"role": "assistant", "content": "A critique that forgot its score."},
        {"role": "user", "content": load_template("cerm-v1").repair},
    ]
    assert repair_calls[0].params.regex == score_regex(config.score_range)
    assert builder.stats.repairs_attempted == builder.stats.repairs_succeeded == 2


def _expected_decision(record):
    provenance = record["provenance"]
    chosen = [s["score"] for s in provenance["chosen_samples"]]
    rejected = [s["score"] for s in provenance["rejected_samples"]]
    valid_chosen = [s for s in chosen if s is not None]
    valid_rejected = [s for s in rejected if s is not None]
    if not valid_chosen or not valid_rejected:
        return False, [], []
    chosen_mean, rejected_mean = statistics.fmean(valid_chosen), statistics.fmean(valid_rejected)
    if chosen_mean <= rejected_mean:
        return False, [], []
    return (
        True,
        [i for i, s in enumerate(chosen) if s is not None and s > rejected_mean],
        [i for i, s in enumerate(rejected) if s is not None and s < chosen_mean],
    )


@pytest.mark.engine
async def test_builder_on_llmbar_filter_decisions_match_the_sampled_scores(built, tmp_path):
    builder, records = built
    assert [r["id"] for r in records] == [p.id for p in llmbar_pairs(PAIRS)]
    failures_seen = 0
    for record in records:
        provenance = record["provenance"]
        for side in ("chosen", "rejected"):
            samples = provenance[f"{side}_samples"]
            assert len(samples) == BUILD_CONFIG.critiques_per_response
            for sample in samples:
                if sample["failure"] is None:
                    assert 0 <= sample["score"] <= 10
                    if not sample["repaired"]:  # a repaired score came from the repair turn, not the critique
                        assert parse_evaluation(sample["text"]).score == sample["score"]
                else:
                    assert sample["score"] is None and FailureKind(sample["failure"])
                    failures_seen += 1
        kept, consistent_chosen, consistent_rejected = _expected_decision(record)
        assert record["kept"] is kept is provenance["filter"]["kept"]
        assert provenance["filter"]["consistent_chosen"] == consistent_chosen
        assert provenance["filter"]["consistent_rejected"] == consistent_rejected
    stats = builder.stats
    assert stats.pairs == PAIRS and stats.kept == sum(r["kept"] for r in records)
    assert stats.kept + sum(stats.drop_reasons.values()) == PAIRS
    assert sum(stats.sample_failures.values()) == failures_seen  # unparsable critiques are counted, not zeroed
    assert stats.repairs_attempted >= stats.repairs_succeeded
    assert any(sample["text"].strip() for r in records for sample in r["provenance"]["chosen_samples"])
    write_jsonl(records, tmp_path / "build.jsonl")
    assert read_build_records(tmp_path / "build.jsonl") == records


@pytest.mark.engine
async def test_rank_refinement_output_is_well_formed(built):
    _, records = built
    assert any(r["kept"] for r in records), "no pair passed the filter: nothing to check the refinement on"
    for record in records:
        provenance = record["provenance"]
        for side in ("chosen", "rejected"):
            refined = provenance[side]
            samples = provenance[f"{side}_samples"]
            assert record[f"{side}_critique"] == refined["text"]
            if not record["kept"]:
                assert refined["source"] == "unfiltered_first_valid"
                continue
            consistent = provenance["filter"][f"consistent_{side}"]
            assert refined["picked"] and set(refined["picked"]) <= set(consistent)
            assert refined["text"] == samples[refined["picked"][0]]["text"]
            if refined["source"] == "rank":  # the meta-judge's own answer names the kept critique
                assert parse_rank(refined["meta_reply"], len(consistent))[0] == consistent.index(refined["picked"][0])
            elif refined["source"] == "fallback_first_consistent":
                assert refined["failure"] is not None and refined["picked"] == consistent[:1]
            else:
                assert refined["source"] == "only_consistent" and consistent == refined["picked"]


@pytest.mark.engine
async def test_summarise_refinement_on_llmbar(embedded_engine):
    config = BUILD_CONFIG.model_copy(
        update={"critiques_per_response": 3, "refinement": "summarise", "meta": SamplingConfig(max_tokens=48, temperature=0.0)}
    )
    builder = CritiqueDataBuilder(embedded_engine, config)
    records = await builder.build(llmbar_pairs(4))
    summarised_sides = 0
    for record in records:
        for side in ("chosen", "rejected"):
            refined = record["provenance"][side]
            consistent = record["provenance"]["filter"][f"consistent_{side}"]
            if not record["kept"] or len(consistent) < 2:
                continue
            summarised_sides += 1
            if refined["source"] == "summary":
                assert refined["picked"] == consistent and refined["text"] == refined["meta_reply"]
                parsed = parse_evaluation(refined["text"])
                assert parsed.score == refined["score"]
                bound = record["provenance"]["filter"]["rejected_mean" if side == "chosen" else "chosen_mean"]
                assert parsed.score > bound if side == "chosen" else parsed.score < bound
            else:
                assert refined["source"] == "fallback_first_consistent"
                assert refined["failure"] in {*(k.value for k in FailureKind), "inconsistent_summary"}
    assert builder.stats.meta_calls == summarised_sides
    assert sum(builder.stats.meta_failures.values()) == sum(
        r["provenance"][s]["source"] == "fallback_first_consistent" for r in records for s in ("chosen", "rejected")
    )


def test_builder_judge_and_cli_load_no_framework():
    """torch/transformers/vLLM are loaded only by training and the head, not by the builder or the CLI."""
    import subprocess
    import sys

    code = (
        "import sys, cerm_reward.training.critic_rm.builder, cerm_reward.judges.critic_rm.judge, cerm_reward.cli.critic; "
        "print(sorted(m for m in ('torch', 'transformers', 'vllm') if m in sys.modules))"
    )
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip() == "[]"


def test_reading_build_records_refuses_a_line_of_another_kind(tmp_path):
    path = tmp_path / "records.jsonl"
    write_jsonl([{"format": RECORD_FORMAT, "id": "a"}, {"id": "b", "prompt": "q"}], path)
    with pytest.raises(InputError, match=rf"records\.jsonl:2: not a {RECORD_FORMAT} record"):
        read_build_records(path)
