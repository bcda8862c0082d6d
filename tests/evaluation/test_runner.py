"""The runner end to end with precomputed scores, concurrency bounds and scorer errors."""

import asyncio
import json
from collections import defaultdict

import pytest

from cerm_reward.data.items import ResponseScore
from cerm_reward.data.loaders import load_items
from cerm_reward.evaluation.metrics import compute_report
from cerm_reward.evaluation.precomputed import PrecomputedScorer
from cerm_reward.evaluation.scoring_loop import Scorer, ScoreScope, evaluate
from cerm_reward.evaluation.store import ResultStore
from tests.evaluation.helpers import SHARED_DATA
from tests.evaluation.test_store import make_items

LLMBAR = SHARED_DATA / "llmbar"


def expected_llmbar_by_length():
    """Accuracy of 'score = character length' computed straight from the raw files."""
    correct, total = defaultdict(int), defaultdict(int)
    ties = 0
    for file in sorted(LLMBAR.glob("*.json")):
        for row in json.loads(file.read_text(encoding="utf-8")):
            good = len(row[f"output_{row['label']}"])
            bad = len(row[f"output_{3 - row['label']}"])
            total[file.stem] += 1
            correct[file.stem] += good > bad
            ties += good == bad
    return correct, total, ties


@pytest.mark.skipif(not LLMBAR.is_dir(), reason="shared benchmark data not present")
@pytest.mark.parametrize("layout", ["scores", "chosen_rejected"])
async def test_precomputed_scores_on_llmbar_end_to_end(tmp_path, layout):
    items = load_items("llmbar", LLMBAR)
    scores_file = tmp_path / "length-rm.jsonl"
    with open(scores_file, "w", encoding="utf-8") as handle:
        for item in items:
            if layout == "scores":
                row = {"id": item.id, "scores": [len(r) for r in item.responses]}
            else:
                row = {"id": item.id, "chosen_scores": [len(r) for r in item.chosen_responses]}
                row["rejected_scores"] = [len(r) for r in item.rejected_responses]
            handle.write(json.dumps(row) + "\n")
    scorer = PrecomputedScorer(scores_file, items, name="length")
    match = scorer.match(items)
    assert isinstance(scorer, Scorer) and match.matched == 419 and not match.missing_ids and not match.unknown_ids
    with ResultStore(tmp_path / "run.jsonl") as store:
        scored, stats = await evaluate(items, scorer, store, concurrency=8)
    assert stats.scored == 419 and stats.failed_items == 0
    report = compute_report(scored)

    correct, total, ties = expected_llmbar_by_length()
    assert report.n == 419 and report.ties == ties
    assert report.overall == pytest.approx(sum(correct.values()) / 419)
    for subset in report.subsets:
        assert subset.n == total[subset.name]
        assert subset.accuracy == pytest.approx(correct[subset.name] / total[subset.name])


async def test_missing_precomputed_scores_are_failures(tmp_path):
    items = make_items(3)
    path = tmp_path / "partial.jsonl"
    path.write_text(
        json.dumps({"id": "i0", "scores": [2, 1]}) + "\n" + json.dumps({"id": "i1", "scores": [None, 1]}) + "\n"
        "" + json.dumps({"id": "elsewhere", "scores": [1, 2]}) + "\n",
        encoding="utf-8",
    )
    scorer = PrecomputedScorer(path, items)
    match = scorer.match(items)
    assert match.unknown_ids == ("elsewhere",) and match.missing_ids == ("i2",) and match.matched == 2
    with ResultStore(tmp_path / "run.jsonl") as store:
        scored, _ = await evaluate(items, scorer, store)
    report = compute_report(scored)
    assert report.overall == pytest.approx(1 / 3)
    assert report.failures == {"missing_score": 2} and report.n_failed == 2


class SlowScorer:
    identity = "slow"
    scope = ScoreScope.RESPONSE

    def __init__(self):
        self.active = 0
        self.peak = 0

    async def score(self, item, positions):
        self.active += 1
        self.peak = max(self.peak, self.active)
        await asyncio.sleep(0.01)
        self.active -= 1
        if item.prompt == "q3":
            raise ConnectionError("engine went away")
        return [ResponseScore(1.0), ResponseScore(0.0)]


async def test_concurrency_is_bounded_and_scorer_errors_become_failures(tmp_path):
    scorer = SlowScorer()
    events = []
    with ResultStore(tmp_path / "run.jsonl") as store:
        scored, stats = await evaluate(make_items(10), scorer, store, concurrency=3, progress=events.append)
    assert scorer.peak == 3
    assert stats.failures == {"engine_error": 1}
    failed = scored[3].scores[0]
    assert failed.score is None and failed.failure == "engine_error" and "engine went away" in failed.detail
    assert [e.done for e in events] == list(range(11)) and events[-1].total == 10
    assert compute_report(scored).overall == pytest.approx(9 / 10)
