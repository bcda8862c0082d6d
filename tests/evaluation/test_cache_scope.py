"""The score cache keys what a score depends on: a listwise scorer's numbers are the same with the
cache on, off, warm or cold, on items that share texts inside differently composed groups."""

import pytest

from cerm_reward.data.items import EvalItem, ResponseScore
from cerm_reward.evaluation.metrics import compute_report
from cerm_reward.evaluation.scoring_loop import ScoreScope, evaluate
from cerm_reward.evaluation.store import ResultStore, ScoreCache


class RankScorer:
    """A listwise scorer: a response scores its rank by length within its own group (0 = shortest).

    The same text scores differently in different groups, the case a per-response cache gets wrong.
    """

    identity = "rank-by-length"
    scope = ScoreScope.GROUP

    def __init__(self):
        self.calls = []

    async def score(self, item, positions):
        self.calls.append((item.id, list(positions)))
        order = sorted(range(len(item.responses)), key=lambda i: (len(item.responses[i]), i))
        rank = {index: position for position, index in enumerate(order)}
        return [ResponseScore(float(rank[i])) for i in positions]


def items():
    """'mid' is the longest response of the first item (chosen, rank 2) and the shortest of the
    second (rejected, rank 0): a per-response cache would carry rank 2 into the second item."""
    mid = "m" * 5
    return [
        EvalItem("first", "pairs", "s", "q", [mid, "a", "bb"], [0], [1, 2]),
        EvalItem("second", "pairs", "s", "q", ["a much longer answer", mid, "longer one"], [0], [1, 2]),
        EvalItem("third", "pairs", "s", "q", ["bb", "a", mid], [0], [1, 2]),  # mid rejected and top: chosen loses
    ]


async def report_of(tmp_path, name, cache):
    scorer = RankScorer()
    with ResultStore(tmp_path / f"{name}.jsonl") as store:
        scored, stats = await evaluate(items(), scorer, store, cache=cache)
    return compute_report(scored), stats, scorer


async def test_a_listwise_scorer_gives_the_same_numbers_with_the_cache_on_off_cold_and_warm(tmp_path):
    off, _, _ = await report_of(tmp_path, "off", None)
    assert off.overall == pytest.approx((1 + 1 + 0.5) / 3)
    cache = ScoreCache(tmp_path / "cache.sqlite")
    cold, cold_stats, _ = await report_of(tmp_path, "cold", cache)
    warm, warm_stats, warm_scorer = await report_of(tmp_path, "warm", cache)
    assert cold_stats.cache_hits == 0 and warm_stats.cache_hits == 9 and warm_scorer.calls == []  # the cache is used
    for report in (cold, warm):
        assert report.to_dict() == off.to_dict()
    cache.close()


async def test_the_same_scorer_keyed_per_response_would_change_the_number(tmp_path):
    """Why the scope matters: these items do expose a per-response key (so the test above can fail)."""
    mislabelled = RankScorer()
    mislabelled.scope = ScoreScope.RESPONSE
    with ResultStore(tmp_path / "run.jsonl") as store:
        scored, _ = await evaluate(items(), mislabelled, store, cache=ScoreCache(tmp_path / "cache.sqlite"))
    assert scored[1].values[1] == 2.0  # 'mid' kept its rank from the first item
    assert compute_report(scored).overall != pytest.approx((1 + 1 + 0.5) / 3)


async def test_a_group_with_one_uncached_response_is_scored_whole(tmp_path):
    cache = ScoreCache(tmp_path / "cache.sqlite")
    await report_of(tmp_path, "first", cache)
    changed = items()[0]
    changed = EvalItem("changed", "pairs", "s", "q", [*changed.responses[:2], "a new third answer"], [0], [1, 2])
    scorer = RankScorer()
    with ResultStore(tmp_path / "changed.jsonl") as store:
        [result], stats = await evaluate([changed], scorer, store, cache=cache)
    assert scorer.calls == [("changed", [0, 1, 2])] and stats.cache_hits == 0  # another group: nothing reused
    assert result.values == [1.0, 0.0, 2.0]  # 'mid' is now the middle one
    cache.close()
