"""Judges as scorers, item selection and scorer identity: what `cerm eval` is built from."""

import itertools

import pytest

from cerm_reward.config import CermJudgeConfig, SamplingConfig
from cerm_reward.data.items import EvalItem, ScoredItem
from cerm_reward.evaluation.job import select_items
from cerm_reward.evaluation.metrics import PairVerdicts, judgebench_pairwise_report, judgebench_report
from cerm_reward.evaluation.scorers import NO_VERDICT, PairwiseScorer
from cerm_reward.judges.cerm.judge import CermJudge
from cerm_reward.judges.pairwise import PairwiseJudge
from cerm_reward.judges.templates import load_template
from tests.scripted_engine import Call, ScriptedEngine


def item(item_id: str, subset: str) -> EvalItem:
    return EvalItem(item_id, "pairs", subset, "p", ["a", "b"], [0], [1])


def test_limit_takes_items_round_robin_over_subsets_in_file_order():
    items = [item(f"x{i}", "x") for i in range(4)] + [item(f"y{i}", "y") for i in range(2)] + [item("z0", "z")]
    picked = select_items(items, limit=5)
    assert [i.id for i in picked] == ["x0", "x1", "y0", "y1", "z0"]  # every subset, file order kept
    assert select_items(items, limit=5) == picked  # the same selection on a resumed run
    assert [i.id for i in select_items(items, subsets=["y"], limit=1)] == ["y0"]
    assert len(select_items(items)) == 7
    with pytest.raises(ValueError, match="unknown subsets"):
        select_items(items, subsets=["w"])


def test_cerm_identity_follows_the_scores_settings_but_not_timeouts():
    def identity(model: str = "m", template: str = "cerm-v1", **changes) -> str:
        config = CermJudgeConfig().model_copy(update=changes)
        judge = CermJudge(ScriptedEngine(lambda call: "", model_id=model), config, template=load_template(template))
        return judge.identity

    same = identity()
    assert same.startswith("cerm:m:cerm-v1:")
    assert identity(call_timeout_s=5.0) == same
    assert identity(samples_per_response=3) != same
    assert identity(model="other") != same


VERDICT_TEXT = {"A": "Response A is better. [[A]]", "B": "[[B]]", "C": "Equal. [[C]]", None: "I cannot decide."}
FILE_LABEL = {"A": "A>B", "B": "B>A", "C": "A=B", None: None}


async def test_pairwise_shares_reproduce_judgebench_net_vote_for_every_verdict_combination():
    """Every (verdict on A,B) x (verdict on B,A) x label: the pointwise rule on win shares gives
    JudgeBench's both-orders credit (exact verdict text is needed, hence the scripted engine)."""
    combos = list(itertools.product(["A", "B", "C", None], repeat=2))
    items, verdicts, script = [], [], {}
    for number, ((ab, ba), label) in enumerate(itertools.product(combos, ["A>B", "B>A"])):
        first, second = f"response one of {number}", f"response two of {number}"
        chosen = [0] if label == "A>B" else [1]
        rejected = [1 - chosen[0]]
        items.append(EvalItem(f"j{number}", "judgebench", "s", f"q{number}", [first, second], chosen, rejected, {"label": label}))
        verdicts.append(PairVerdicts(f"j{number}", FILE_LABEL[ab], FILE_LABEL[ba]))
        script[(first, second)] = VERDICT_TEXT[ab]
        script[(second, first)] = VERDICT_TEXT[ba]

    def reply(call: Call) -> str:
        user = call.messages[-1]["content"]
        shown_first = user.split("[Response A]\n")[1].split("\n\n[Response B]")[0]
        shown_second = user.split("[Response B]\n")[1]
        return script[(shown_first, shown_second)]

    scorer = PairwiseScorer(PairwiseJudge(ScriptedEngine(reply), SamplingConfig(max_tokens=16)))
    scored = [ScoredItem(i, await scorer.score(i, range(len(i.responses)))) for i in items]

    pointwise = judgebench_report(scored)
    both_orders = judgebench_pairwise_report(items, verdicts)
    assert pointwise.overall == both_orders.overall and pointwise.overall_alt == both_orders.overall_alt
    assert 0 < both_orders.overall < 1  # the combinations cover right, wrong and zero votes
    for s, (ab, ba) in zip(scored, (combo for combo in combos for _ in range(2)), strict=True):
        assert (NO_VERDICT in s.failure_kinds) == (None in (ab, ba))  # a game without a verdict is a counted failure
