"""Kill-and-resume semantics of the result store, and the score cache."""

import json

import pytest

from cerm_reward.data.items import EvalItem, ResponseScore
from cerm_reward.evaluation.scoring_loop import ScoreScope, evaluate
from cerm_reward.evaluation.store import ResultStore, ScoreCache, StoreError, group_key, response_key


def make_items(n, prefix="i"):
    return [
        EvalItem(
            id=f"{prefix}{k}",
            benchmark="pairs",
            subset="s",
            prompt=f"q{k}",
            responses=[f"good {k}", f"bad {k}"],
            chosen=[0],
            rejected=[1],
        )
        for k in range(n)
    ]


class Killed(Exception):
    """Stands in for the process being killed mid-run (raised through ``raise_errors``)."""


class CountingScorer:
    """A pointwise scorer: a response's score is its length; counts calls; can fail on one prompt."""

    scope = ScoreScope.RESPONSE

    def __init__(self, identity="len-v1", fail_on=None):
        self.identity = identity
        self.fail_on = fail_on
        self.calls = []

    async def score(self, item, positions):
        if item.prompt == self.fail_on:
            raise Killed(item.prompt)
        responses = [item.responses[i] for i in positions]
        self.calls.append((item.prompt, responses))
        return [ResponseScore(float(len(r))) for r in responses]


def file_ids(path):
    return [json.loads(line)["id"] for line in path.read_text(encoding="utf-8").splitlines()]


def test_torn_last_line_is_dropped_and_truncated(tmp_path):
    path = tmp_path / "run.jsonl"
    items = make_items(3)
    with ResultStore(path) as store:
        for item in items:
            store.append(item, [ResponseScore(1.0), ResponseScore(0.0)], judge="j")
    good = path.read_bytes()
    with open(path, "ab") as handle:
        handle.write(b'{"id": "i3", "judge": "j", "scores": [{"sco')  # the write a kill interrupted
    store = ResultStore(path)
    assert store.ids == {"i0", "i1", "i2"}
    assert store.truncated_bytes == len(b'{"id": "i3", "judge": "j", "scores": [{"sco')
    assert path.read_bytes() == good
    store.append(make_items(4)[3], [ResponseScore(2.0), ResponseScore(1.0)], judge="j")
    store.close()
    assert file_ids(path) == ["i0", "i1", "i2", "i3"]
    assert ResultStore(path).scores("i3") == [ResponseScore(2.0), ResponseScore(1.0)]


def test_complete_but_unreadable_last_line_is_also_dropped(tmp_path):
    path = tmp_path / "run.jsonl"
    path.write_text('{"id": "a", "scores": []}\n{"id": "b", "sco\n', encoding="utf-8")
    store = ResultStore(path)
    assert store.ids == {"a"} and path.read_text(encoding="utf-8") == '{"id": "a", "scores": []}\n'


def test_damage_before_the_last_line_is_an_error(tmp_path):
    path = tmp_path / "run.jsonl"
    path.write_text('{"id": "a", "scores": []}\nnot json\n{"id": "b", "scores": []}\n', encoding="utf-8")
    with pytest.raises(StoreError, match="damaged line"):
        ResultStore(path)


def test_an_id_is_stored_once(tmp_path):
    item = make_items(1)[0]
    with ResultStore(tmp_path / "run.jsonl") as store:
        store.append(item, [ResponseScore(1.0), ResponseScore(0.0)], judge="j")
        with pytest.raises(StoreError, match="already stored"):
            store.append(item, [ResponseScore(1.0), ResponseScore(0.0)], judge="j")


async def test_killed_run_resumes_with_every_item_exactly_once(tmp_path):
    path = tmp_path / "run.jsonl"
    items = make_items(12)
    killer = CountingScorer(fail_on="q7")
    with ResultStore(path) as store, pytest.raises(Killed):
        await evaluate(items, killer, store, concurrency=1, raise_errors=True)
    finished = set(file_ids(path))
    assert finished == {f"i{k}" for k in range(7)}  # concurrency 1: items before q7 finished, in order
    with open(path, "ab") as handle:
        handle.write(b'{"id": "i7", "scor')  # and a torn line on top

    scorer = CountingScorer()
    with ResultStore(path) as store:
        scored, stats = await evaluate(items, scorer, store, concurrency=3)
    assert stats.skipped == 7 and stats.scored == 5
    assert sorted(prompt for prompt, _ in scorer.calls) == sorted(f"q{k}" for k in range(7, 12))
    ids = file_ids(path)
    assert sorted(ids) == sorted(i.id for i in items) and len(ids) == len(set(ids))
    assert [s.item.id for s in scored] == [i.id for i in items]
    assert all(s.values == [float(len(i.responses[0])), float(len(i.responses[1]))] for s, i in zip(scored, items, strict=True))


async def test_a_store_belongs_to_one_judge(tmp_path):
    with ResultStore(tmp_path / "run.jsonl") as store:
        await evaluate(make_items(2), CountingScorer("judge-a"), store)
        with pytest.raises(ValueError, match="judge-a"):
            await evaluate(make_items(2), CountingScorer("judge-b"), store)


async def test_cache_reuses_scores_across_runs_and_benchmarks(tmp_path):
    cache = ScoreCache(tmp_path / "cache.sqlite")
    items = make_items(4)
    first = CountingScorer()
    with ResultStore(tmp_path / "a.jsonl") as store:
        _, stats = await evaluate(items, first, store, cache=cache)
    assert stats.cache_hits == 0 and stats.cache_misses == 8 and len(cache) == 8

    # the same texts under other ids (another benchmark) in a fresh store: no scorer call at all
    renamed = [EvalItem(f"other-{i.id}", "llmbar", "x", i.prompt, i.responses, i.chosen, i.rejected) for i in items]
    second = CountingScorer()
    with ResultStore(tmp_path / "b.jsonl") as store:
        scored, stats = await evaluate(renamed, second, store, cache=cache)
    assert second.calls == [] and stats.cache_hits == 8 and stats.scorer_calls == 0
    assert scored[0].values == [6.0, 5.0]

    # another judge identity misses
    third = CountingScorer("len-v2")
    with ResultStore(tmp_path / "c.jsonl") as store:
        _, stats = await evaluate(items[:1], third, store, cache=cache)
    assert stats.cache_hits == 0 and len(third.calls) == 1
    cache.close()


async def test_cache_scores_only_missing_responses_and_skips_failures(tmp_path):
    cache = ScoreCache(tmp_path / "cache.sqlite")
    item = make_items(1)[0]
    cache.put(response_key("len-v1", item.prompt, item.responses[0]), "len-v1", ResponseScore(6.0))
    assert not cache.put(response_key("len-v1", item.prompt, item.responses[1]), "len-v1", ResponseScore(None, "timeout"))
    scorer = CountingScorer()
    with ResultStore(tmp_path / "run.jsonl") as store:
        [result], _ = await evaluate([item], scorer, store, cache=cache)
    assert scorer.calls == [(item.prompt, [item.responses[1]])]
    assert result.values == [6.0, 5.0]
    persisted = ScoreCache(tmp_path / "cache.sqlite")
    assert persisted.get(response_key("len-v1", item.prompt, item.responses[1])) == ResponseScore(5.0)


def test_a_group_key_names_the_whole_group_and_the_position():
    key = group_key("j", "q", ["a", "b"], 0)
    assert key != group_key("j", "q", ["a", "c"], 0)  # another group around the same text
    assert key != group_key("j", "q", ["a", "b"], 1) and key != group_key("j", "q", ["b", "a"], 1)
    assert key != response_key("j", "q", "a")
