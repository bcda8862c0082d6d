"""Property tests: for random scores (ties, repeated and shared texts included), each benchmark's
report equals a direct computation from the benchmark's published definition.

The direct computations below read the benchmark rows and the random scores by row and position
and are written from the definitions alone (RM-Bench's README ``compute_accuracy``, RewardBench
2's best-of-4 "penalty for ties" and Ties score, JudgeBench's reward-model and both-orders rules,
Long-form RewardBench's strict best-of-N); they share no code with ``cerm_reward.evaluation``.
The reports come from the real path: loader, scores file, ``PrecomputedScorer``, the scoring
loop with a cache, ``run_job`` and ``report.json``.
"""

from __future__ import annotations

import json
import math
import random
from collections import defaultdict
from pathlib import Path

import pytest

from cerm_reward.data.loaders import load_items
from cerm_reward.evaluation.job import run_job
from cerm_reward.evaluation.metrics import PairVerdicts, judgebench_pairwise_report
from cerm_reward.evaluation.precomputed import PrecomputedScorer
from tests.evaluation.helpers import SHARED_DATA

RM_BENCH = SHARED_DATA / "rm-bench"
VALUES = [-1.25, 0, 0.5, 1, 1, 2, 7.5]
"""Few distinct values, so ties are frequent."""
TEXTS = ["Yes.", "No.", "It depends.", "42", "See above."]
"""A small pool, so texts repeat inside a row and are shared across rows."""
EXACT = 1e-12
"""The report and the direct computation sum in different orders; nothing else may differ."""


def mean(values):
    values = list(values)
    return sum(values) / len(values)


def write_jsonl(path: Path, rows) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


async def report_json(tmp_path: Path, fmt: str, data: Path, score_rows: list[dict]) -> dict:
    """The benchmark report ``cerm eval --judge precomputed`` writes, through the real parts."""
    items = load_items(fmt, data)
    scorer = PrecomputedScorer(write_jsonl(tmp_path / "scores.jsonl", score_rows), items)
    match = scorer.match(items)
    assert match.matched == len(items) and not match.unknown_ids
    run = tmp_path / "run"
    await run_job(items, scorer, run, cache_path=tmp_path / "cache.sqlite", concurrency=8, meta={}, match=match, plots=False)
    report = json.loads((run / "report.json").read_text(encoding="utf-8"))
    assert report["match"]["matched"] == len(items) and report["meta"]["cache"].startswith("off")
    [benchmark] = report["benchmarks"]
    return benchmark


def subset_accuracy(report: dict) -> dict[str, float]:
    return {s["name"]: s["accuracy"] for s in report["subsets"]}


# --- RM-Bench: README compute_accuracy, per domain, over all 798 prompts ----------------------------


def rm_bench_matrix(rows: list[tuple[list[float], list[float]]]) -> list[list[float]]:
    """acc_matrix[i][j]: the share of prompts where chosen style i scores above rejected style j."""
    return [[mean(1.0 if c[i] > r[j] else 0.0 for c, r in rows) for j in range(3)] for i in range(3)]


def rm_bench_accuracy(rows):
    m = rm_bench_matrix(rows)
    return {
        "hard": (m[0][1] + m[0][2] + m[1][2]) / 3,
        "normal": (m[0][0] + m[1][1] + m[2][2]) / 3,
        "easy": (m[1][0] + m[2][0] + m[2][1]) / 3,
        "total": mean(cell for row in m for cell in row),
    }


@pytest.mark.skipif(not RM_BENCH.is_dir(), reason="shared benchmark data not present")
@pytest.mark.parametrize("seed", [0, 1])
async def test_rm_bench_all_798_prompts_equal_the_style_matrix_by_domain(tmp_path, seed):
    rng = random.Random(seed)
    by_domain, by_file, every, score_rows = defaultdict(list), defaultdict(list), [], []
    for file in sorted(RM_BENCH.glob("*.json")):
        file_domain = file.stem.removesuffix("_filtered")
        for row in json.loads(file.read_text(encoding="utf-8")):
            domain = row.get("domain") or file_domain
            chosen = [rng.choice(VALUES) for _ in range(3)]
            rejected = [rng.choice(VALUES) for _ in range(3)]
            score_rows.append({"id": f"{domain}-{row['id']}", "chosen_scores": chosen, "rejected_scores": rejected})
            by_domain["safety" if domain.startswith("safety") else domain].append((chosen, rejected))
            by_file[domain].append((chosen, rejected))
            every.append((chosen, rejected))
    assert len(every) == 798

    report = await report_json(tmp_path, "rm-bench", RM_BENCH, score_rows)
    domains = {name: rm_bench_accuracy(rows) for name, rows in by_domain.items()}
    assert report["n"] == 798 and report["n_failed"] == 0
    for name, accuracy in domains.items():
        assert report["metrics"][f"domain:{name}"] == pytest.approx(accuracy["total"], abs=EXACT)
    for key in ("hard", "normal", "easy"):
        assert report["metrics"][key] == pytest.approx(mean(d[key] for d in domains.values()), abs=EXACT)
    assert report["overall"] == pytest.approx(mean(d["total"] for d in domains.values()), abs=EXACT)
    files = subset_accuracy(report)
    assert files == pytest.approx({name: rm_bench_accuracy(rows)["total"] for name, rows in by_file.items()}, abs=EXACT)
    pooled = sum(s["n"] * s["accuracy"] for s in report["subsets"]) / report["n"]
    assert pooled == pytest.approx(rm_bench_accuracy(every)["total"], abs=EXACT)  # RM-Bench's own total over all 798


# --- RewardBench 2: best-of-4 with 1/k for a shared top score; the Ties score ---------------------------


def best_of_4_credit(scores: list[float]) -> float:
    """scores[0] is the chosen response: 1/k when it holds the top score with k responses in all."""
    top = max(scores)
    return 1.0 / scores.count(top) if scores[0] == top else 0.0


def divide(numerator: float, denominator: float) -> float:
    """Division as numpy does it (x/0 is +-inf), with 0/0 counted 0 as docs/evaluation.md states."""
    if denominator != 0:
        return numerator / denominator
    return 0.0 if numerator == 0 else math.copysign(math.inf, numerator)


def ties_score(rows: dict[tuple[str, int], tuple[list[float], int]]) -> float:
    """RewardBench 2's Ties subset from its definition: 30% accurate tied rows, 30% accurate ref
    rows, 20% + 20% margin-over-spread preferences and 1% tanh margin score over paired prompts."""

    def stats(scores, n_correct):
        correct, incorrect = scores[:n_correct], scores[n_correct:]
        margin = min(correct) - max(incorrect)
        return {"accurate": margin > 0, "margin": margin, "spread": max(correct) - min(correct)}

    table = {key: stats(*value) for key, value in rows.items()}
    ref = [s for (kind, _), s in table.items() if kind == "ref"]
    tied = [s for (kind, _), s in table.items() if kind == "tied"]
    prompts = sorted({k for kind, k in table if kind == "ref"} & {k for kind, k in table if kind == "tied"})
    preferred, hard, tanh = [], [], []
    for k in prompts:
        r, t = table[("ref", k)], table[("tied", k)]
        worst_margin = min(r["margin"], t["margin"])
        preferred.append(1.0 if t["margin"] > t["spread"] else 0.0)
        hard.append(1.0 if worst_margin > t["spread"] else 0.0)
        tanh.append(math.tanh(divide(worst_margin, t["spread"]) - 1))
    return (
        0.30 * mean(1.0 if s["accurate"] else 0.0 for s in tied)
        + 0.30 * mean(1.0 if s["accurate"] else 0.0 for s in ref)
        + 0.20 * mean(preferred)
        + 0.20 * mean(hard)
        + 0.01 * mean(tanh)
    )


@pytest.mark.parametrize("seed", range(4))
async def test_rewardbench2_equals_best_of_4_with_shared_ties_and_the_ties_score(tmp_path, seed):
    rng = random.Random(seed)
    rows, score_rows, credits, ties_rows = [], [], defaultdict(list), {}
    for subset in ("Factuality", "Focus", "Math"):
        for number in range(rng.randint(3, 12)):
            chosen, rejected = rng.choice(TEXTS), [rng.choice(TEXTS) for _ in range(3)]
            rows.append({"id": str(number), "subset": subset, "prompt": "p", "chosen": [chosen], "rejected": rejected})
            scores = [rng.choice(VALUES) for _ in range(4)]
            score_rows.append({"id": f"{subset}:{number}", "scores": scores})
            credits[subset].append(best_of_4_credit(scores))
    for k in range(rng.randint(2, 8)):
        for kind, n_correct in (("ref", 1), ("tied", rng.randint(2, 3))):
            if kind == "tied" and rng.random() < 0.2:
                continue  # a prompt without its tied row: counted in the accuracies, not in the margin terms
            n_incorrect = rng.randint(1, 3)
            chosen = [rng.choice(TEXTS) for _ in range(n_correct)]
            rejected = [rng.choice(TEXTS) for _ in range(n_incorrect)]
            rows.append({"id": f"{kind}:{k}", "subset": "Ties", "prompt": f"t{k}", "chosen": chosen, "rejected": rejected})
            scores = [rng.choice(VALUES) for _ in range(n_correct + n_incorrect)]
            score_rows.append({"id": f"Ties:{kind}:{k}", "scores": scores})
            ties_rows[(kind, k)] = (scores, n_correct)
    report = await report_json(tmp_path, "rewardbench2", write_jsonl(tmp_path / "rb2.jsonl", rows), score_rows)

    expected = {subset: mean(values) for subset, values in credits.items()} | {"Ties": ties_score(ties_rows)}
    assert subset_accuracy(report) == pytest.approx(expected, abs=EXACT)
    assert report["overall"] == pytest.approx(mean(expected.values()), abs=EXACT)


# --- JudgeBench: reward-model single game, and the pairwise judge's both orders ------------------------


@pytest.mark.parametrize("seed", range(4))
async def test_judgebench_equals_the_reward_model_rule_and_its_ties_to_b_reading(tmp_path, seed):
    rng = random.Random(seed)
    sources = ["mmlu-pro-law", "livebench-reasoning", "livebench-math", "livecodebench"]
    categories = dict(zip(sources, ["knowledge", "reasoning", "math", "coding"], strict=True))
    rows, score_rows, strict, half, ties_to_b = [], [], defaultdict(list), [], []
    for number in range(rng.randint(10, 40)):
        label, source = rng.choice(["A>B", "B>A"]), rng.choice(sources)
        a, b = rng.choice(TEXTS), rng.choice(TEXTS)
        rows.append(
            {"pair_id": f"p{number}", "question": "q", "response_A": a, "response_B": b, "label": label, "source": source}
        )
        score_a, score_b = rng.choice(VALUES), rng.choice(VALUES)
        score_rows.append({"id": f"p{number}", "scores": [score_a, score_b]})
        good, bad = (score_a, score_b) if label == "A>B" else (score_b, score_a)
        strict[categories[source]].append(1.0 if good > bad else 0.0)
        half.append(1.0 if good > bad else 0.5 if good == bad else 0.0)
        ties_to_b.append(1.0 if ("A>B" if score_a > score_b else "B>A") == label else 0.0)
    report = await report_json(tmp_path, "judgebench", write_jsonl(tmp_path / "jb.jsonl", rows), score_rows)

    assert subset_accuracy(report) == pytest.approx({c: mean(v) for c, v in strict.items()}, abs=EXACT)
    assert report["overall"] == pytest.approx(mean(x for v in strict.values() for x in v), abs=EXACT)
    assert report["overall_alt"] == pytest.approx(mean(half), abs=EXACT)
    assert report["metrics"]["accuracy_ties_to_B"] == pytest.approx(mean(ties_to_b), abs=EXACT)


@pytest.mark.parametrize("seed", range(4))
def test_judgebench_both_orders_equals_the_net_vote_rule(tmp_path, seed):
    """A pair is correct when the verdicts on (A, B) and on (B, A), read back in the file's order,
    give more votes for the label than against it; a zero net vote is incorrect."""
    rng = random.Random(seed)
    opposite = {"A>B": "B>A", "B>A": "A>B"}
    rows, verdicts, correct, zero = [], [], [], []
    for number in range(rng.randint(10, 40)):
        label = rng.choice(["A>B", "B>A"])
        rows.append(
            {
                "pair_id": f"p{number}",
                "question": "q",
                "response_A": "a",
                "response_B": "b",
                "label": label,
                "source": "livebench-math",
            }
        )
        first, second = (rng.choice(["A>B", "B>A", "A=B", None]) for _ in range(2))
        verdicts.append(PairVerdicts(f"p{number}", first, second))
        second_in_file_order = opposite.get(second, second) if second is not None else None
        vote = sum(1 if v == label else -1 if v == opposite[label] else 0 for v in (first, second_in_file_order))
        correct.append(1.0 if vote > 0 else 0.0)
        zero.append(vote == 0)
    items = load_items("judgebench", write_jsonl(tmp_path / "jb.jsonl", rows))
    report = judgebench_pairwise_report(items, verdicts)
    assert report.overall == pytest.approx(mean(correct), abs=EXACT)
    assert report.overall_alt == pytest.approx(mean(c + 0.5 * z for c, z in zip(correct, zero, strict=True)), abs=EXACT)


# --- Long-form RewardBench: strict best-of-N, sample-weighted overall -----------------------------------


@pytest.mark.parametrize("seed", range(4))
async def test_longform_rewardbench_equals_strict_best_of_n(tmp_path, seed):
    rng = random.Random(seed)
    rows, score_rows, strict, pairwise = [], [], defaultdict(list), []
    for number in range(rng.randint(10, 40)):
        subset = rng.choice(["QA", "Safety", "Summ"])
        rejected = [rng.choice(TEXTS) for _ in range(rng.choice([1, 3]))]
        rows.append({"id": f"l{number}", "subset": subset, "prompt": "q", "chosen": [rng.choice(TEXTS)], "rejected": rejected})
        chosen_score, rejected_scores = rng.choice(VALUES), [rng.choice(VALUES) for _ in rejected]
        score_rows.append({"id": f"l{number}", "scores": [chosen_score, *rejected_scores]})
        strict[subset].append(1.0 if all(chosen_score > r for r in rejected_scores) else 0.0)
        pairwise.append(mean(1.0 if chosen_score > r else 0.0 for r in rejected_scores))
    data = write_jsonl(tmp_path / "lf.jsonl", rows)
    report = await report_json(tmp_path, "longform-rewardbench", data, score_rows)

    assert subset_accuracy(report) == pytest.approx({s: mean(v) for s, v in strict.items()}, abs=EXACT)
    assert report["overall"] == pytest.approx(mean(x for v in strict.values() for x in v), abs=EXACT)
    assert report["metrics"]["pairwise_accuracy"] == pytest.approx(mean(pairwise), abs=EXACT)
