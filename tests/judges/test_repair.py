"""The format-repair turn both CE-RM and the Critic-RM builder use: its messages, its constraint, its reply."""

from __future__ import annotations

import re

from cerm_reward.judges.repair import ScoreRepair, score_regex
from cerm_reward.judges.templates import load_template
from tests.scripted_engine import ScriptedEngine


def test_the_score_regex_is_the_published_one_and_holds_scores_in_range():
    assert score_regex((0, 10)) == r"\\boxed\{(?:10|(?:9|8|7|6|5|4|3|2|1|0)(?:\.5)?)\}"
    pattern = re.compile(score_regex((1, 5)))
    assert all(pattern.fullmatch(f"\\boxed{{{s}}}") for s in ("1", "4.5", "5"))
    assert not any(pattern.fullmatch(f"\\boxed{{{s}}}") for s in ("0", "5.5", "6", "10"))


async def test_the_turn_replays_the_failed_reply_then_asks_greedily_under_the_regex():
    repair = ScoreRepair(load_template("cerm-v1").repair, (0.0, 10.0), max_tokens=16)
    engine = ScriptedEngine(lambda call: "\\boxed{7.5}")
    evaluation = [
        {"role": "user", "content": "criteria?"},
        {"role": "assistant", "content": "C"},
        {"role": "user", "content": "E"},
    ]
    reply = await repair.ask(engine.chat, evaluation, "a long analysis with no score")
    [call] = engine.calls
    assert call.messages == [
        *evaluation,
        {"role": "assistant", "content": "a long analysis with no score"},
        {"role": "user", "content": load_template("cerm-v1").repair},
    ]
    assert (call.params.max_tokens, call.params.temperature, call.params.regex) == (16, 0.0, score_regex((0.0, 10.0)))
    assert (reply.score, reply.usage.completion_tokens) == (7.5, 1)
    assert reply.detail("no_score") == "repaired after no_score: \\boxed{7.5}"


async def test_a_reply_without_a_score_in_range_gives_none():
    repair = ScoreRepair("score?", (0.0, 10.0), max_tokens=16)
    reply = await repair.ask(ScriptedEngine(lambda call: "\\boxed{12}").chat, [{"role": "user", "content": "q"}], "x")
    assert reply.score is None and reply.text == "\\boxed{12}"
