"""The bench counts what it claims: groups, shared prefixes, calls, verdicts, criteria generations, reports.

Timing is never asserted here (benchmarks are commands); the scripted engine gives exact replies.
"""

import re
from pathlib import Path

from cerm_reward.bench.criteria import common_prefix_length, unified_criteria
from cerm_reward.bench.figures import at_least, reported
from cerm_reward.bench.suite import BEGIN, END, write_report
from cerm_reward.bench.workload import BenchGroup, Corpus, bench_judge_config
from cerm_reward.config import SamplingConfig
from cerm_reward.judges.cerm.judge import CermJudge
from cerm_reward.judges.pairwise import PairwiseJudge, pairwise_messages, parse_verdict
from tests.scripted_engine import ScriptedEngine

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "rollouts.jsonl"


def test_groups_have_n_responses_and_distinct_queries_beyond_the_file():
    corpus = Corpus.read(EXAMPLES)
    groups = corpus.groups(len(corpus.queries) + 3, 16)
    assert all(len(group.responses) == 16 for group in groups)
    assert len({group.query for group in groups}) == len(groups)
    assert all(response.strip() for group in groups for response in group.responses)


def test_common_prefix_length():
    assert common_prefix_length([[1, 2, 3, 4], [1, 2, 9], [1, 2, 3]]) == 2
    assert common_prefix_length([[5, 6], [5, 6]]) == 2
    assert common_prefix_length([[1], [2]]) == 0


def test_verdicts_parse_the_last_marker_and_a_missing_one_is_a_failure():
    assert parse_verdict("A seems fine [[B]] ... final: [[A]]") == "A"
    assert parse_verdict("[[C]]") == "tie"
    assert parse_verdict("Response A is better.") is None


async def test_round_robin_plays_both_orders_and_scores_win_shares():
    def reply(call):
        text = call.messages[-1]["content"]
        first = re.search(r"\[Response A\]\n(.*)\n\n\[Response B\]", text, re.S).group(1)
        second = text.rsplit("[Response B]\n", 1)[1]
        rank = {"best": 3, "middle": 2, "worst": 1, "unparseable": 0}
        if "unparseable" in (first, second):
            return "no verdict here"
        return "[[A]]" if rank[first] > rank[second] else "[[B]]"

    engine = ScriptedEngine(reply)
    result = await PairwiseJudge(engine, SamplingConfig(max_tokens=8)).round_robin(
        "q", ["worst", "best", "middle", "unparseable"]
    )
    assert result.games == 12 and len(engine.calls) == 12  # n(n-1): every ordered pair
    assert result.failed_games == 6  # every game with the unparseable response, both orders
    assert result.scores == [0.0, 4 / 6, 2 / 6, 0.0]
    assert engine.calls[0].messages == pairwise_messages("q", "worst", "best")


async def test_unified_criteria_counts_one_generation_per_group_and_the_baseline_one_per_response():
    engine = ScriptedEngine(
        lambda call: "[Start of Criteria]\n1. ok\n[End of Criteria]" if len(call.messages) == 1 else "\\boxed{5}", delay_s=0.01
    )
    judge = CermJudge(engine, bench_judge_config(8, 8))
    groups = [BenchGroup(f"question {g}", [f"answer {g}.{i}" for i in range(4)]) for g in range(3)]
    (count, wall) = await unified_criteria(judge, {4: groups})
    assert count.value == 1 and count.passed is True
    assert "per-response criteria: 4 per group" in count.detail
    assert sum(1 for call in engine.calls if len(call.messages) == 1) == 3 + 12  # ours, then the baseline


def test_the_report_block_is_replaced_and_the_prose_around_it_kept(tmp_path):
    path = tmp_path / "performance.md"
    path.write_text("# Performance\n\nProse before.\n")
    write_report(path, [at_least("s", "ratio", 0.97, 0.95)], "cerm bench", "test machine")
    write_report(path, [at_least("s", "ratio", 0.90, 0.95), reported("s", "rss", 12.0, "MiB")], "cerm bench --n 8", "m2")
    text = path.read_text()
    assert text.count(BEGIN) == 1 and text.count(END) == 1 and "Prose before." in text
    assert "| s | ratio | 0.9 | >= 0.95 | MISS |" in text and "0.97" not in text
    assert "`cerm bench --n 8`" in text and "| s | rss | 12 MiB | - | - |" in text


def test_bench_reads_and_writes_only_the_paths_it_is_given():
    """No default input from examples/ and no default report: `cerm bench` never rewrites ./docs/performance.md."""
    from typer.main import get_command
    from typer.testing import CliRunner

    from cerm_reward.cli.app import app

    missing = CliRunner().invoke(app, ["bench"])
    assert missing.exit_code == 2 and "--data" in missing.output
    options = {param.name: param for param in get_command(app).commands["bench"].params}
    assert options["data"].required and options["output"].default is None
    unknown = CliRunner().invoke(app, ["bench", "--data", str(EXAMPLES), "--sections", "unified,bogus"])
    assert unknown.exit_code == 2 and "unknown sections ['bogus']" in " ".join(unknown.output.replace("│", " ").split())
