"""SFT distillation's consistency filter, with a scripted teacher (the filter needs exact teacher scores).

The teacher's protocol on a real model is tested against vLLM in tests/engines; here only the
keep / drop decision and the row layout are under test.
"""

from cerm_reward import CermJudge, CermJudgeConfig
from cerm_reward.data.pairs import PreferencePair
from cerm_reward.judges.templates import load_template
from cerm_reward.training.cerm.distill import distill_conversations
from tests.judges.test_cerm_judge import CRITERIA, judge_by_response
from tests.scripted_engine import ScriptedEngine

TEACHER = {"right": "good \\boxed{8}", "worse": "weak \\boxed{3}", "tie": "\\boxed{5}", "garbled": "no score here"}


def pair(id: str, chosen: str, rejected: str) -> PreferencePair:
    return PreferencePair(id, f"Question {id}?", chosen, rejected, "test", "test")


async def test_only_pairs_the_teacher_ranks_right_become_two_conversations():
    judge = CermJudge(ScriptedEngine(judge_by_response(TEACHER)), CermJudgeConfig(failure={"max_resamples": 0}))
    pairs = [pair("a", "right", "worse"), pair("b", "worse", "right"), pair("c", "tie", "tie"), pair("d", "right", "garbled")]
    rows, counts = await distill_conversations(pairs, judge)

    assert dict(counts) == {"kept": 1, "wrong": 2, "unscored": 1}  # a tie is not ranked right
    assert [(r["pair_id"], r["role"], r["score"]) for r in rows] == [("a", "chosen", 8.0), ("a", "rejected", 3.0)]
    template = load_template("cerm-v1")
    chosen = rows[0]["messages"]
    assert chosen[:3] == template.evaluation_messages("Question a?", CRITERIA, "right")
    assert chosen[3] == {"role": "assistant", "content": TEACHER["right"]}


async def test_a_repaired_score_is_not_distilled():
    judge = CermJudge(
        ScriptedEngine(judge_by_response({"right": "good \\boxed{8}", "cut": "no score"}, repair_reply="\\boxed{1}")),
        CermJudgeConfig(failure={"max_resamples": 0, "repair": True}),
    )
    rows, counts = await distill_conversations([pair("a", "right", "cut")], judge)
    assert rows == [] and dict(counts) == {"unscored": 1}
