"""Precomputed scores are read by item id and position: shared and repeated texts keep their own
scores, bad values are counted failures, bad rows are input errors naming file, line and field."""

import json
import math

import pytest

from cerm_reward.data.items import INVALID_SCORE, EvalItem, ResponseScore, ScoredItem
from cerm_reward.errors import InputError
from cerm_reward.evaluation.metrics import compute_report
from cerm_reward.evaluation.precomputed import MISSING_SCORE, PrecomputedScorer
from cerm_reward.evaluation.scoring_loop import ScoreScope, evaluate
from cerm_reward.evaluation.store import ResultStore, ScoreCache


def write_rows(path, rows):
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


def best_of_4(item_id, chosen, rejected, subset="Focus"):
    return EvalItem(item_id, "rewardbench2", subset, "q", [chosen, *rejected], [0], [1, 2, 3], {})


async def run(items, scorer, tmp_path, cache=None):
    with ResultStore(tmp_path / f"store-{len(list(tmp_path.iterdir()))}.jsonl") as store:
        scored, _ = await evaluate(items, scorer, store, cache=cache)
    return scored


async def test_a_text_shared_by_two_items_keeps_each_items_score(tmp_path):
    """RewardBench 2 with one text in two rows, scored differently: a lookup by text gave the
    second row the first row's score; by id and position each row keeps its own."""
    items = [best_of_4("a", "shared", ["x", "y", "z"]), best_of_4("b", "good", ["shared", "v", "w"])]
    scores = write_rows(tmp_path / "s.jsonl", [{"id": "a", "scores": [5, 1, 1, 1]}, {"id": "b", "scores": [4, 0, 1, 1]}])
    scored = await run(items, PrecomputedScorer(scores, items), tmp_path)
    assert [s.values for s in scored] == [[5.0, 1.0, 1.0, 1.0], [4.0, 0.0, 1.0, 1.0]]
    assert compute_report(scored).overall == 1.0  # by text, b's "shared" would read 5 and beat its chosen


async def test_a_response_repeated_inside_an_item_keeps_each_positions_score(tmp_path):
    """RM-Bench repeats a response inside 63 items: each position has its own score."""
    item = EvalItem("chat-1", "rm-bench", "chat", "q", ["c", "c", "c2", "r", "r", "r2"], [0, 1, 2], [3, 4, 5])
    rows = [{"id": "chat-1", "chosen_scores": [1, 3, 2], "rejected_scores": [2, 0, 4]}]
    scorer = PrecomputedScorer(write_rows(tmp_path / "s.jsonl", rows), [item])
    [result] = await run([item], scorer, tmp_path, cache=ScoreCache(tmp_path / "cache.sqlite"))
    assert result.values == [1.0, 3.0, 2.0, 2.0, 0.0, 4.0]
    assert scorer.scope is ScoreScope.ITEM  # never cached: the cache could only key texts


def test_a_repeated_id_with_the_same_scores_is_accepted_with_other_scores_refused(tmp_path):
    items = [best_of_4("a", "c", ["x", "y", "z"])]
    same = write_rows(tmp_path / "same.jsonl", [{"id": "a", "scores": [1, 0, 0, 0]}, {"id": "a", "scores": [1.0, 0, 0, 0]}])
    assert PrecomputedScorer(same, items).match(items).duplicate_rows == 1
    other = write_rows(
        tmp_path / "other.jsonl",
        [{"id": "a", "scores": [1, 0, 0, 0]}, {"id": "b", "scores": [1]}, {"id": "a", "scores": [0, 1, 0, 0]}],
    )
    with pytest.raises(InputError) as error:
        PrecomputedScorer(other, items)
    assert str(error.value) == f"{other}:3: id 'a' repeats {other}:1 with other scores"


BAD_VALUES = [float("nan"), float("inf"), -float("inf"), "high", "0.5", {"score": 1}, [[1]], [1, 2], True]


async def test_every_non_finite_or_non_numeric_score_is_a_counted_invalid_score(tmp_path):
    items = [best_of_4(f"i{k}", f"c{k}", ["x", "y", "z"]) for k in range(len(BAD_VALUES))]
    rows = [{"id": item.id, "scores": [value, 0, 0, 0]} for item, value in zip(items, BAD_VALUES, strict=True)]
    path = tmp_path / "s.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")  # NaN/Infinity as Python writes them
    scored = await run(items, PrecomputedScorer(path, items), tmp_path)
    for number, result in enumerate(scored, 1):
        first = result.scores[0]
        assert first.score is None and first.failure == INVALID_SCORE
        assert first.detail.startswith(f"{path}:{number}.scores[0]: ")
    report = compute_report(scored)
    assert report.overall == 0.0 and report.overall_alt == 0.0  # a NaN best-of-4 earns no credit
    assert report.failures == {INVALID_SCORE: len(items)} and report.failure_ids == {INVALID_SCORE: [i.id for i in items]}


async def test_a_scorer_that_returns_nan_gets_an_invalid_score_not_a_comparison(tmp_path):
    """Any scorer, not only a file: the loop turns a non-finite score into a counted failure."""

    class NanScorer:
        identity = "nan-scorer"
        scope = ScoreScope.RESPONSE

        async def score(self, item, positions):
            return [ResponseScore(math.nan if i == 0 else 1.0) for i in positions]

    items = [EvalItem("j1", "judgebench", "math", "q", ["a", "b"], [1], [0], {"label": "B>A"})]
    scored = await run(items, NanScorer(), tmp_path)
    report = compute_report(scored)
    assert scored[0].scores[0].failure == INVALID_SCORE
    assert report.metrics["accuracy_ties_to_B"] == 0.0  # a NaN no longer reads as B>A
    assert report.failure_ids == {INVALID_SCORE: ["j1"]}


def test_a_nan_that_reaches_a_metric_is_a_bug_not_a_number():
    item = best_of_4("a", "c", ["x", "y", "z"])
    with pytest.raises(ValueError, match=r"a\[0\]: score nan reached a metric"):
        ScoredItem(item, [ResponseScore(math.nan), *[ResponseScore(0.0)] * 3])
    assert ResponseScore.from_dict({"score": math.inf}).failure == INVALID_SCORE  # an old store's inf is counted too


async def test_null_scores_and_missing_rows_are_missing_score_failures(tmp_path):
    items = [best_of_4(f"i{k}", f"c{k}", ["x", "y", "z"]) for k in range(3)]
    rows = [{"id": "i0", "scores": [None, 0, 0, 0], "failures": ["timeout", None]}, {"id": "i1", "scores": [None, 0, 0, 0]}]
    scorer = PrecomputedScorer(write_rows(tmp_path / "s.jsonl", rows), items)
    scored = await run(items, scorer, tmp_path)
    assert [s.scores[0].failure for s in scored] == ["timeout", MISSING_SCORE, MISSING_SCORE]
    assert scored[2].scores[3].failure == MISSING_SCORE  # no row: every position
    match = scorer.match(items)
    assert (match.matched, match.missing_ids, match.rows) == (2, ("i2",), 2)


def test_match_counts_unknown_ids_against_the_data_not_the_selection(tmp_path):
    items = [best_of_4(f"i{k}", f"c{k}", ["x", "y", "z"]) for k in range(3)]
    rows = [{"id": f"i{k}", "scores": [1, 0, 0, 0]} for k in range(3)] + [{"id": "elsewhere", "scores": [1]}]
    scorer = PrecomputedScorer(write_rows(tmp_path / "s.jsonl", rows), items)
    match = scorer.match(items[:1])  # a --limit 1 run: i1, i2 are in the data, only "elsewhere" is unknown
    assert (match.items, match.matched, match.missing_ids, match.unknown_ids) == (1, 1, (), ("elsewhere",))
    assert not match.is_partial and scorer.match([*items, best_of_4("new", "c", ["x", "y", "z"])]).is_partial


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('["a", [1, 0, 0, 0]]', ":2: expected an object with 'id' and 'scores', got list"),
        ('{"scores": [1, 0, 0, 0]}', ":2: missing field 'id'"),
        ('{"id": "a", "scores": {"c": 1}}', ":2.scores: expected a list of 4 scores, got dict"),
        ('{"id": "a", "scores": [1, 0]}', ":2.scores: 2 scores for the 4 responses of item 'a'"),
        ('{"id": "a", "chosen_scores": [1], "rejected_scores": [0]}', ":2.rejected_scores: 1 scores for the 3 responses"),
        ('{"id": "a", "scores": [1, 0, 0, 0], "failures": [3]}', ":2.failures: expected a list of failure kinds"),
        ('{"id": "a", "score": 1}', ":2: a row needs 'scores' or 'chosen_scores' + 'rejected_scores'"),
        ("{not json", ":2: not JSON"),
    ],
)
def test_a_malformed_row_is_an_input_error_naming_file_line_and_field(tmp_path, line, message):
    items = [best_of_4("a", "c", ["x", "y", "z"])]
    path = tmp_path / "s.jsonl"
    path.write_text('{"id": "of another dataset", "scores": [1]}\n' + line + "\n", encoding="utf-8")
    with pytest.raises(InputError) as error:
        PrecomputedScorer(path, items)
    assert str(error.value).startswith(f"{path}{message}")


def test_a_json_list_names_rows_by_index(tmp_path):
    items = [best_of_4("a", "c", ["x", "y", "z"])]
    path = tmp_path / "s.json"
    path.write_text(json.dumps([{"id": "a", "scores": [1, 0, 0, 0]}, {"id": "a", "scores": "high"}]), encoding="utf-8")
    with pytest.raises(InputError, match=r"s\.json\[1\]\.scores: expected a list of 4 scores, got str"):
        PrecomputedScorer(path, items)
    path.write_bytes(b"\xff\xfe not utf-8")
    with pytest.raises(InputError, match="not JSON"):
        PrecomputedScorer(path, items)
