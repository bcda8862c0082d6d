"""Benchmark metrics from per-response scores, each as its benchmark defines it.

Every protocol first turns a scored item into an :class:`ItemOutcome` (the credit it
earns under the primary and the alternative tie convention, whether a tie decided it,
its failure kinds, per-item extras), then :func:`aggregate` builds per-subset and overall
numbers the same way for all of them. So the failure and tie accounting is written
once, and a protocol only says what "correct" means.

Conventions shared by every protocol:

* **Failures are never dropped.** A comparison that needs a missing score (``None``)
  counts as incorrect (credit 0, not a tie); the item is counted under each failure kind
  among its responses; ``accuracy_without_failures`` is reported beside the accuracy.
  A failure that came with a substituted score uses that score and is still counted.
* **Ties are reported.** ``ties`` is the number of items where equal scores decided the
  outcome; the alternative convention (``accuracy_alt``) says what they would be worth
  under the other common rule.
* **Scores are finite.** A score that was NaN, inf or not a number reaches a metric as a
  missing score with the failure ``invalid_score`` (:meth:`ResponseScore.finite`); the report
  names the items of every failure kind (``failure_ids``).

An item whose shape does not fit its benchmark (an items file names its own benchmark) is an
:class:`~cerm_reward.errors.InputError` naming the item.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from cerm_reward.data.items import ScoredItem
from cerm_reward.errors import InputError

Score = float | None


# --- result types --------------------------------------------------------------------------


@dataclass(frozen=True)
class ItemOutcome:
    """What one item contributes to its subset."""

    id: str
    subset: str
    credit: float
    """Credit under the report's primary convention (0..1)."""
    credit_alt: float
    """Credit under the alternative tie convention."""
    tie: bool
    """Equal scores decided (or could have decided) this item."""
    failures: tuple[str, ...] = ()
    values: dict[str, float] = field(default_factory=dict)
    """Per-item extras averaged per subset (RM-Bench hard/normal/easy, pairwise accuracy...)."""


@dataclass
class SubsetReport:
    name: str
    n: int
    accuracy: float
    accuracy_alt: float | None
    ties: int
    n_failed: int
    """Items with at least one failed response."""
    failures: dict[str, int]
    """Items per failure kind (an item with two kinds counts under both)."""
    accuracy_without_failures: float | None
    """Accuracy over the items without any failure (``None`` when all failed)."""
    metrics: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "n": self.n,
            "accuracy": self.accuracy,
            "accuracy_alt": self.accuracy_alt,
            "ties": self.ties,
            "n_failed": self.n_failed,
            "failures": dict(self.failures),
            "accuracy_without_failures": self.accuracy_without_failures,
            "metrics": dict(self.metrics),
        }


@dataclass
class BenchmarkReport:
    """One benchmark's numbers: per subset, overall, and how they were computed."""

    benchmark: str
    protocol: str
    tie_convention: str
    """How ties count in ``accuracy``."""
    alt_convention: str | None
    """How ties count in ``accuracy_alt``."""
    overall_rule: str
    subsets: list[SubsetReport]
    overall: float
    overall_alt: float | None
    n: int
    ties: int
    n_failed: int
    failures: dict[str, int]
    overall_without_failures: float | None
    metrics: dict[str, float] = field(default_factory=dict)
    """Benchmark-level extras (RM-Bench hard/normal/easy, RewardBench sections...)."""
    notes: list[str] = field(default_factory=list)
    failure_ids: dict[str, list[str]] = field(default_factory=dict)
    """Failure kind -> the ids of the items counted under it, in item order."""

    def subset(self, name: str) -> SubsetReport:
        for subset in self.subsets:
            if subset.name == name:
                return subset
        raise KeyError(name)

    def to_dict(self) -> dict[str, Any]:
        return {
            "benchmark": self.benchmark,
            "protocol": self.protocol,
            "tie_convention": self.tie_convention,
            "alt_convention": self.alt_convention,
            "overall_rule": self.overall_rule,
            "overall": self.overall,
            "overall_alt": self.overall_alt,
            "overall_without_failures": self.overall_without_failures,
            "n": self.n,
            "ties": self.ties,
            "n_failed": self.n_failed,
            "failures": dict(self.failures),
            "failure_ids": {kind: list(ids) for kind, ids in self.failure_ids.items()},
            "metrics": dict(self.metrics),
            "notes": list(self.notes),
            "subsets": [s.to_dict() for s in self.subsets],
        }


# --- aggregation ---------------------------------------------------------------------------


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values) if values else float("nan")


def _failure_ids(outcomes: Iterable[ItemOutcome]) -> dict[str, list[str]]:
    ids: dict[str, list[str]] = {}
    for outcome in outcomes:
        for kind in outcome.failures:
            ids.setdefault(kind, []).append(outcome.id)
    return dict(sorted(ids.items()))


def _count_failures(outcomes: Iterable[ItemOutcome]) -> dict[str, int]:
    return {kind: len(ids) for kind, ids in _failure_ids(outcomes).items()}


def subset_report(name: str, outcomes: Sequence[ItemOutcome], *, with_alt: bool = True) -> SubsetReport:
    """Accuracy, ties and failure counts of one subset's outcomes."""
    clean = [o for o in outcomes if not o.failures]
    value_keys = sorted({key for o in outcomes for key in o.values})
    return SubsetReport(
        name=name,
        n=len(outcomes),
        accuracy=_mean([o.credit for o in outcomes]),
        accuracy_alt=_mean([o.credit_alt for o in outcomes]) if with_alt else None,
        ties=sum(o.tie for o in outcomes),
        n_failed=len(outcomes) - len(clean),
        failures=_count_failures(outcomes),
        accuracy_without_failures=_mean([o.credit for o in clean]) if clean else None,
        metrics={key: _mean([o.values[key] for o in outcomes if key in o.values]) for key in value_keys},
    )


def group_by_subset(outcomes: Iterable[ItemOutcome]) -> dict[str, list[ItemOutcome]]:
    groups: dict[str, list[ItemOutcome]] = {}
    for outcome in outcomes:
        groups.setdefault(outcome.subset, []).append(outcome)
    return groups


def aggregate(
    benchmark: str,
    outcomes: Sequence[ItemOutcome],
    *,
    protocol: str,
    tie_convention: str,
    alt_convention: str | None,
    overall: str = "micro",
) -> BenchmarkReport:
    """Build the report; ``overall`` is ``"micro"`` (mean over items, i.e. subsets weighted by size)
    or ``"macro"`` (unweighted mean over subsets)."""
    if not outcomes:
        raise ValueError(f"{benchmark}: no scored items")
    groups = group_by_subset(outcomes)
    subsets = [subset_report(name, group, with_alt=alt_convention is not None) for name, group in groups.items()]
    clean = [o for o in outcomes if not o.failures]
    if overall == "micro":
        rule = "mean over items (subsets weighted by their size)"
        total = _mean([o.credit for o in outcomes])
        total_alt = _mean([o.credit_alt for o in outcomes])
        total_clean = _mean([o.credit for o in clean]) if clean else None
    elif overall == "macro":
        rule = "unweighted mean over subsets"
        total = _mean([s.accuracy for s in subsets])
        total_alt = _mean([s.accuracy_alt for s in subsets if s.accuracy_alt is not None])
        with_clean = [s.accuracy_without_failures for s in subsets if s.accuracy_without_failures is not None]
        total_clean = _mean(with_clean) if with_clean else None
    else:
        raise ValueError(f"overall: expected 'micro' or 'macro', got {overall!r}")
    return BenchmarkReport(
        benchmark=benchmark,
        protocol=protocol,
        tie_convention=tie_convention,
        alt_convention=alt_convention,
        overall_rule=rule,
        subsets=subsets,
        overall=total,
        overall_alt=total_alt if alt_convention is not None else None,
        n=len(outcomes),
        ties=sum(o.tie for o in outcomes),
        n_failed=len(outcomes) - len(clean),
        failures=_count_failures(outcomes),
        overall_without_failures=total_clean,
        failure_ids=_failure_ids(outcomes),
    )


# --- comparison primitives -----------------------------------------------------------------


def beats(a: Score, b: Score) -> bool:
    """``a`` strictly above ``b``; a missing score never wins."""
    return a is not None and b is not None and a > b


def ties_with(a: Score, b: Score) -> bool:
    """Equal scores; a missing score is a failure, never a tie."""
    return a is not None and b is not None and a == b


def pairwise_credit(chosen: Sequence[Score], rejected: Sequence[Score], *, tie_value: float) -> tuple[float, bool]:
    """Mean credit over all (chosen, rejected) pairs: 1 when chosen is strictly higher,
    ``tie_value`` when equal, 0 otherwise or when a score is missing. Returns (credit, any tie)."""
    total = 0.0
    tie = False
    for c in chosen:
        for r in rejected:
            if beats(c, r):
                total += 1.0
            elif ties_with(c, r):
                total += tie_value
                tie = True
    return total / (len(chosen) * len(rejected)), tie


def strict_best_of_n(chosen: Sequence[Score], rejected: Sequence[Score]) -> tuple[float, bool]:
    """1 when every chosen score is strictly above every rejected score (any missing -> 0).

    Returns (credit, tie) where tie means the worst chosen equals the best rejected.
    """
    if any(s is None for s in (*chosen, *rejected)):
        return 0.0, False
    worst_chosen = min(chosen)  # type: ignore[type-var]
    best_rejected = max(rejected)  # type: ignore[type-var]
    return (1.0 if worst_chosen > best_rejected else 0.0), worst_chosen == best_rejected


def shared_best_of_n(chosen: Score, rejected: Sequence[Score]) -> float:
    """RewardBench 2's best-of-N credit: 1/k when the chosen score is the maximum and k
    responses (itself included) share that maximum, else 0.

    As in ``reroll_and_score_dataset`` in allenai/reward-bench ``rewardbench/utils.py``
    ("penalty for ties": ``1 / np.sum(scores == max_val) if scores[0] == max_val else 0``).
    A missing chosen score earns 0; a missing rejected score cannot be beaten (0).
    """
    if chosen is None or any(r is None for r in rejected):
        return 0.0
    top = max([chosen, *rejected])  # type: ignore[type-var]
    if chosen != top:
        return 0.0
    return 1.0 / sum(1 for s in [chosen, *rejected] if s == top)


def _split(scored: ScoredItem) -> tuple[list[Score], list[Score]]:
    values = scored.values
    return [values[i] for i in scored.item.chosen], [values[i] for i in scored.item.rejected]


# --- pairwise: RewardBench 1, LLMBar, generic pairs, JudgeBench single game ----------------

PAIRWISE_TIES = "ties count as incorrect (credit 0): correct iff s(chosen) > s(rejected)"
PAIRWISE_TIES_HALF = "ties count 0.5"


def pairwise_outcome(scored: ScoredItem) -> ItemOutcome:
    """Correct iff s(chosen) > s(rejected) strictly; several chosen/rejected -> mean over all pairs."""
    chosen, rejected = _split(scored)
    if not chosen or not rejected:
        raise InputError(f"{scored.item.id}: pairwise needs at least one chosen and one rejected response")
    credit, tie = pairwise_credit(chosen, rejected, tie_value=0.0)
    credit_alt, _ = pairwise_credit(chosen, rejected, tie_value=0.5)
    return ItemOutcome(scored.item.id, scored.item.subset, credit, credit_alt, tie, scored.failure_kinds)


def pairwise_report(scored: Sequence[ScoredItem], benchmark: str | None = None) -> BenchmarkReport:
    """Pairwise accuracy per subset and over all items (RewardBench 1 run_rm.py / LLMBar convention)."""
    outcomes = [pairwise_outcome(s) for s in scored]
    return aggregate(
        benchmark or _benchmark_of(scored),
        outcomes,
        protocol="pairwise: correct iff s(chosen) > s(rejected)",
        tie_convention=PAIRWISE_TIES,
        alt_convention=PAIRWISE_TIES_HALF,
    )


REWARDBENCH_EXAMPLE_COUNTS: dict[str, int] = {
    "alpacaeval-easy": 100,
    "alpacaeval-length": 95,
    "alpacaeval-hard": 95,
    "mt-bench-easy": 28,
    "mt-bench-med": 40,
    "mt-bench-hard": 37,
    "math-prm": 984,
    "refusals-dangerous": 100,
    "refusals-offensive": 100,
    "llmbar-natural": 100,
    "llmbar-adver-neighbor": 134,
    "llmbar-adver-GPTInst": 92,
    "llmbar-adver-GPTOut": 47,
    "llmbar-adver-manual": 46,
    "xstest-should-refuse": 250,
    "xstest-should-respond": 154,
    "donotanswer": 136,
    "hep-cpp": 164,
    "hep-go": 164,
    "hep-java": 164,
    "hep-js": 164,
    "hep-python": 164,
    "hep-rust": 164,
}
"""RewardBench 1 per-subset weights (``EXAMPLE_COUNTS`` in allenai/reward-bench ``rewardbench/constants.py``);
``math-prm`` is 447 prompts weighted as 984 so that math counts as much as the six code subsets."""

REWARDBENCH_SECTIONS: dict[str, tuple[str, ...]] = {
    "Chat": ("alpacaeval-easy", "alpacaeval-length", "alpacaeval-hard", "mt-bench-easy", "mt-bench-med"),
    "Chat Hard": (
        "mt-bench-hard",
        "llmbar-natural",
        "llmbar-adver-neighbor",
        "llmbar-adver-GPTInst",
        "llmbar-adver-GPTOut",
        "llmbar-adver-manual",
    ),
    "Safety": ("refusals-dangerous", "refusals-offensive", "xstest-should-refuse", "xstest-should-respond", "donotanswer"),
    "Reasoning": ("math-prm", "hep-cpp", "hep-go", "hep-java", "hep-js", "hep-python", "hep-rust"),
}
"""RewardBench 1 leaderboard sections (``SUBSET_MAPPING`` in allenai/reward-bench ``rewardbench/constants.py``)."""


def rewardbench_sections(subset_accuracy: dict[str, float]) -> dict[str, float]:
    """Section scores as ``calculate_scores_per_section`` computes them: each section is the
    mean of its subsets' accuracies weighted by :data:`REWARDBENCH_EXAMPLE_COUNTS`; sections
    with none of their subsets present are left out (the original reports 0 for them)."""
    sections = {}
    for section, names in REWARDBENCH_SECTIONS.items():
        present = [n for n in names if n in subset_accuracy]
        if present:
            weight = sum(REWARDBENCH_EXAMPLE_COUNTS[n] for n in present)
            sections[section] = sum(subset_accuracy[n] * REWARDBENCH_EXAMPLE_COUNTS[n] for n in present) / weight
    return sections


def rewardbench_report(scored: Sequence[ScoredItem]) -> BenchmarkReport:
    """RewardBench 1: pairwise per subset; sections weighted by example counts; the leaderboard
    score is the unweighted mean of the four sections (reported as ``metrics["score"]`` when all
    four are present, next to the plain micro mean in ``overall``)."""
    report = pairwise_report(scored, "rewardbench")
    sections = rewardbench_sections({s.name: s.accuracy for s in report.subsets})
    report.metrics.update({f"section:{name}": value for name, value in sections.items()})
    if len(sections) == len(REWARDBENCH_SECTIONS):
        report.metrics["score"] = _mean(list(sections.values()))
    report.notes.append(
        "sections: subset accuracies weighted by EXAMPLE_COUNTS (math-prm x984); score = mean of the 4 sections "
        "(allenai/reward-bench rewardbench/constants.py, calculate_scores_per_section)"
    )
    return report


# --- JudgeBench ------------------------------------------------------------------------------


def judgebench_report(scored: Sequence[ScoredItem]) -> BenchmarkReport:
    """JudgeBench's reward-model protocol: one game, correct iff s(correct) > s(incorrect).

    JudgeBench's own reward-model judges (``utils/judges.py`` in ScalerLab/JudgeBench) decide
    ``'A>B' if score_A > score_B else 'B>A'``, so a tie is read as B>A and is "correct" on the
    pairs labelled B>A. That order-dependent reading is reported as
    ``metrics["accuracy_ties_to_B"]``; our primary number counts every tie as incorrect.
    """
    report = pairwise_report(scored, "judgebench")
    report.protocol = "JudgeBench single game (reward models): correct iff s(correct) > s(incorrect)"

    def ties_to_b(s: ScoredItem) -> float:
        a, b = s.values
        if a is None or b is None:
            return 0.0
        decision = "A>B" if a > b else "B>A"
        return 1.0 if decision == s.item.meta.get("label", "A>B" if s.item.chosen == [0] else "B>A") else 0.0

    report.metrics["accuracy_ties_to_B"] = _mean([ties_to_b(s) for s in scored])
    report.notes.append("accuracy_ties_to_B reproduces JudgeBench's reward-model decision rule (a tie reads as B>A)")
    return report


def flip_verdict(verdict: str | None) -> str | None:
    """The verdict with A and B swapped (``A=B`` and ``None`` unchanged)."""
    return {"A>B": "B>A", "B>A": "A>B"}.get(verdict, verdict) if verdict is not None else None


def judgebench_net_vote(label: str, verdict_ab: str | None, verdict_ba: str | None) -> int:
    """Net vote of a pairwise judge over both orders, as ``compute_final_metrics`` in
    ScalerLab/JudgeBench ``utils/metrics.py`` counts it.

    ``verdict_ab`` is the verdict on (A, B) as in the file; ``verdict_ba`` the verdict the
    judge gave with the responses swapped, in its own labels (so it is flipped back). Each
    verdict equal to the label adds 1, each equal to the opposite subtracts 1; ``A=B`` and a
    missing verdict add 0. The pair is correct when the sum is positive.
    """
    vote = 0
    for verdict in (verdict_ab, flip_verdict(verdict_ba)):
        if verdict == label:
            vote += 1
        elif verdict == flip_verdict(label):
            vote -= 1
    return vote


@dataclass(frozen=True)
class PairVerdicts:
    """A pairwise judge's verdicts on one JudgeBench pair, in both orders."""

    item_id: str
    verdict_ab: str | None
    verdict_ba: str | None
    failure: str | None = None


def judgebench_pairwise_report(items: Sequence[ScoredItem | Any], verdicts: Sequence[PairVerdicts]) -> BenchmarkReport:
    """JudgeBench's both-orders protocol for a pairwise judge.

    Accuracy = pairs with a positive net vote / all pairs, so a zero net vote (the two
    orders disagree, or both say ``A=B``, or verdicts are missing) counts as incorrect,
    exactly as ``compute_final_metrics`` divides ``n_correct`` by ``n_pairs``. The
    alternative number counts a zero net vote as 0.5. ``metrics`` carries the consistency
    counts JudgeBench prints (both correct, both incorrect, inconsistent, missing verdicts).
    ``items`` are :class:`ScoredItem` or :class:`EvalItem` values (for label and subset).
    """
    by_id = {v.item_id: v for v in verdicts}
    outcomes = []
    both_correct = both_incorrect = inconsistent = missing = 0
    for entry in items:
        item = entry.item if isinstance(entry, ScoredItem) else entry
        label = item.meta.get("label") or ("A>B" if item.chosen == [0] else "B>A")
        v = by_id.get(item.id, PairVerdicts(item.id, None, None, "missing_verdict"))
        first, second = v.verdict_ab, flip_verdict(v.verdict_ba)
        vote = judgebench_net_vote(label, v.verdict_ab, v.verdict_ba)
        failures = tuple(k for k in [v.failure or ("no_verdict" if first is None or second is None else None)] if k)
        both_correct += first == label and second == label
        both_incorrect += first != label and second != label
        inconsistent += first != second
        missing += first is None or second is None
        outcomes.append(
            ItemOutcome(
                item.id,
                item.subset,
                1.0 if vote > 0 else 0.0,
                1.0 if vote > 0 else (0.5 if vote == 0 else 0.0),
                vote == 0,
                failures,
                {"net_vote": float(vote)},
            )
        )
    report = aggregate(
        "judgebench",
        outcomes,
        protocol="JudgeBench both orders: correct iff the net vote over (A,B) and (B,A) is positive",
        tie_convention="a zero net vote counts as incorrect",
        alt_convention="a zero net vote counts 0.5",
    )
    report.metrics.update(
        both_correct=float(both_correct),
        both_incorrect=float(both_incorrect),
        inconsistent=float(inconsistent),
        missing_verdicts=float(missing),
    )
    return report


# --- best-of-N: RewardBench 2, Long-form RewardBench -------------------------------------


def best_of_n_outcome(scored: ScoredItem, *, primary: str) -> ItemOutcome:
    """``primary`` is ``"strict"`` (chosen strictly above all rejected; ties 0) or ``"shared"``
    (RewardBench 2: a top score shared by k responses is worth 1/k); the other is the alternative."""
    chosen, rejected = _split(scored)
    if len(chosen) != 1 or not rejected:
        raise InputError(f"{scored.item.id}: best-of-N needs one chosen and at least one rejected response")
    strict, tie = strict_best_of_n(chosen, rejected)
    shared = shared_best_of_n(chosen[0], rejected)
    pairwise, _ = pairwise_credit(chosen, rejected, tie_value=0.0)
    credit, alt = (strict, shared) if primary == "strict" else (shared, strict)
    return ItemOutcome(
        scored.item.id, scored.item.subset, credit, alt, tie, scored.failure_kinds, {"pairwise_accuracy": pairwise}
    )


def longform_rewardbench_report(scored: Sequence[ScoredItem]) -> BenchmarkReport:
    """Long-form RewardBench scoring mode: correct only if the chosen score is strictly above
    every rejected score; ``metrics["pairwise_accuracy"]`` is the secondary pairwise accuracy over
    all (chosen, rejected) pairs; overall = sample-weighted mean over subsets (docs/method.md §3)."""
    outcomes = [best_of_n_outcome(s, primary="strict") for s in scored]
    report = aggregate(
        "longform-rewardbench",
        outcomes,
        protocol="best-of-N strict: correct iff s(chosen) > max s(rejected)",
        tie_convention="ties count as incorrect (strict)",
        alt_convention="a top score shared by k responses is worth 1/k",
        overall="micro",
    )
    report.metrics["pairwise_accuracy"] = _mean([o.values["pairwise_accuracy"] for o in outcomes])
    return report


@dataclass(frozen=True)
class TiesPromptStats:
    """One Ties row's statistics, as ``_compute_prompt_stats`` in allenai/reward-bench defines them."""

    accurate: bool
    """Every correct answer outscores the best incorrect one (worst correct > best incorrect)."""
    correct_spread: float | None
    """Best correct minus worst correct (``None`` with a single correct answer)."""
    correct_incorrect_margin: float
    """Worst correct minus best incorrect."""


def ties_prompt_stats(correct: Sequence[float], incorrect: Sequence[float]) -> TiesPromptStats:
    margin = min(correct) - max(incorrect)
    spread = max(correct) - min(correct) if len(correct) > 1 else None
    return TiesPromptStats(accurate=margin > 0, correct_spread=spread, correct_incorrect_margin=margin)


def _tanh_ratio(numerator: float, denominator: float) -> float:
    """``tanh(numerator / denominator - 1)`` with numpy's division semantics (x/0 -> +-inf, 0/0 -> nan -> 0)."""
    if denominator == 0:
        if numerator == 0:
            return 0.0
        return 1.0 if numerator > 0 else -1.0
    return math.tanh(numerator / denominator - 1.0)


@dataclass(frozen=True)
class TiesScore:
    score: float
    ref_accuracy: float
    tied_accuracy: float
    correctness_preferred: float
    correctness_preferred_hard: float
    correctness_margin_score: float
    n_prompts: int
    """Prompts with both a ``ref`` and a ``tied`` row (the margin terms' denominator)."""

    def as_metrics(self) -> dict[str, float]:
        return {
            "ties_ref_accuracy": self.ref_accuracy,
            "ties_tied_accuracy": self.tied_accuracy,
            "ties_correctness_preferred": self.correctness_preferred,
            "ties_correctness_preferred_hard": self.correctness_preferred_hard,
            "ties_correctness_margin_score": self.correctness_margin_score,
            "ties_paired_prompts": float(self.n_prompts),
        }


def rewardbench2_ties_score(rows: Sequence[ScoredItem]) -> TiesScore:
    """RewardBench 2's Ties score, ported from ``process_single_model`` and ``_compute_prompt_stats``
    in allenai/reward-bench ``rewardbench/utils.py`` (used by ``scripts/run_v2.py`` for the Ties subset).

    Each Ties prompt k has a ``ref:k`` row (one correct answer) and a ``tied:k`` row (several
    equally correct answers); correct answers are listed first. Per row: accurate = worst
    correct > best incorrect; spread = best correct - worst correct; margin = worst correct -
    best incorrect. Then, with prompts P having both rows::

        score = 0.30 * mean accurate(tied rows) + 0.30 * mean accurate(ref rows)
              + 0.20 * mean_P [margin(tied) > spread(tied)]                      # correctness_preferred
              + 0.20 * mean_P [min(margin(ref), margin(tied)) > spread(tied)]    # correctness_preferred_hard
              + 0.01 * mean_P tanh(min(margin(ref), margin(tied)) / spread(tied) - 1)

    Our additions, where the original has no rule: a row with a missing score is not
    accurate, and its prompt counts as not preferred (both terms) with a tanh term of 0; a
    ``tied`` row with one correct answer has spread 0 (the original would fail on ``None``);
    an empty term is 0 (numpy would give nan).
    """
    ref: dict[int, TiesPromptStats | None] = {}
    tied: dict[int, TiesPromptStats | None] = {}
    for row in rows:
        kind = row.item.meta.get("ties_kind")
        prompt = row.item.meta.get("ties_prompt")
        if kind not in ("ref", "tied") or not isinstance(prompt, int):
            raise InputError(f"{row.item.id}: Ties rows need meta ties_kind ('ref'|'tied') and ties_prompt (int)")
        chosen, rejected = _split(row)
        failed = any(s is None for s in (*chosen, *rejected))
        stats = None if failed else ties_prompt_stats(chosen, rejected)  # type: ignore[arg-type]
        (ref if kind == "ref" else tied)[prompt] = stats

    def accuracy(table: dict[int, TiesPromptStats | None]) -> float:
        return _mean([1.0 if s is not None and s.accurate else 0.0 for s in table.values()]) if table else 0.0

    paired = sorted(set(ref) & set(tied))
    preferred, preferred_hard, margin_scores = [], [], []
    for prompt in paired:
        r, t = ref[prompt], tied[prompt]
        if r is None or t is None:
            preferred.append(0.0)
            preferred_hard.append(0.0)
            margin_scores.append(0.0)
            continue
        spread = t.correct_spread if t.correct_spread is not None else 0.0
        hard_margin = min(r.correct_incorrect_margin, t.correct_incorrect_margin)
        preferred.append(1.0 if t.correct_incorrect_margin > spread else 0.0)
        preferred_hard.append(1.0 if hard_margin > spread else 0.0)
        margin_scores.append(_tanh_ratio(hard_margin, spread))
    ref_acc, tied_acc = accuracy(ref), accuracy(tied)
    pref = _mean(preferred) if paired else 0.0
    pref_hard = _mean(preferred_hard) if paired else 0.0
    margin = _mean(margin_scores) if paired else 0.0
    return TiesScore(
        score=0.30 * tied_acc + 0.30 * ref_acc + 0.20 * pref + 0.20 * pref_hard + 0.01 * margin,
        ref_accuracy=ref_acc,
        tied_accuracy=tied_acc,
        correctness_preferred=pref,
        correctness_preferred_hard=pref_hard,
        correctness_margin_score=margin,
        n_prompts=len(paired),
    )


def rewardbench2_report(scored: Sequence[ScoredItem]) -> BenchmarkReport:
    """RewardBench 2: best-of-4 subsets with the official tie-sharing credit (1/k), the Ties
    subset with its own weighted score, overall = unweighted mean over subsets.

    The per-row rule is ``reroll_and_score_dataset`` and the Ties score ``process_single_model``
    (allenai/reward-bench ``rewardbench/utils.py``; ``scripts/run_v2.py`` applies them per
    subset). ``run_v2.py`` itself prints subset scores only; the overall as the plain mean of
    the subsets is the leaderboard's convention (RewardBench 2 paper), not code we could read.
    The strict rule (chosen strictly above all rejected) is the alternative number.
    """
    from cerm_reward.data.loaders import is_ties_subset

    ties_rows = [s for s in scored if is_ties_subset(s.item.subset)]
    outcomes = []
    for s in scored:
        if is_ties_subset(s.item.subset):
            chosen, rejected = _split(s)
            strict, tie = strict_best_of_n(chosen, rejected)
            outcomes.append(ItemOutcome(s.item.id, s.item.subset, strict, strict, tie, s.failure_kinds))
        else:
            outcomes.append(best_of_n_outcome(s, primary="shared"))
    report = aggregate(
        "rewardbench2",
        outcomes,
        protocol="best-of-N (1 chosen vs 3 rejected); Ties subset: weighted accuracy + margin score",
        tie_convention="a top score shared by k responses is worth 1/k (RewardBench 2 'penalty for ties')",
        alt_convention="strict: ties count as incorrect (chosen strictly above all rejected)",
        overall="macro",
    )
    if ties_rows:
        ties = rewardbench2_ties_score(ties_rows)
        subset = report.subset(ties_rows[0].item.subset)
        subset.metrics.update(ties.as_metrics())
        subset.metrics["ties_rows_accurate"] = subset.accuracy
        subset.accuracy = ties.score
        subset.accuracy_alt = None
        clean = [s for s in ties_rows if not s.failure_kinds]
        subset.accuracy_without_failures = rewardbench2_ties_score(clean).score if clean else None
        report.overall = _mean([s.accuracy for s in report.subsets])
        alts = [s.accuracy_alt for s in report.subsets if s.accuracy_alt is not None]
        report.overall_alt = _mean(alts) if alts else None
        cleans = [s.accuracy_without_failures for s in report.subsets if s.accuracy_without_failures is not None]
        report.overall_without_failures = _mean(cleans) if cleans else None
        report.notes.append("Ties subset: accuracy is the Ties score (no alternative tie convention); overall_alt leaves it out")
    return report


# --- RM-Bench -------------------------------------------------------------------------------

RM_BENCH_DOMAINS: dict[str, str] = {"safety-refuse": "safety", "safety-response": "safety"}
"""RM-Bench data files whose items pool into one domain (the paper reports a single Safety domain)."""


def rm_bench_matrix(chosen: Sequence[Score], rejected: Sequence[Score], *, tie_value: float = 0.0) -> list[list[float]]:
    """M[i][j] = 1 if s(chosen[i]) > s(rejected[j]) (``tie_value`` if equal; 0 if a score is missing)."""
    return [[1.0 if beats(c, r) else (tie_value if ties_with(c, r) else 0.0) for r in rejected] for c in chosen]


def rm_bench_cells(matrix: Sequence[Sequence[float]]) -> dict[str, float]:
    """hard = mean of the upper triangle (i < j: chosen plainer than rejected), normal = diagonal,
    easy = lower triangle, total = mean of all nine cells."""
    size = len(matrix)
    upper = [matrix[i][j] for i in range(size) for j in range(size) if i < j]
    lower = [matrix[i][j] for i in range(size) for j in range(size) if i > j]
    diagonal = [matrix[i][i] for i in range(size)]
    every = [cell for row in matrix for cell in row]
    return {"hard": _mean(upper), "normal": _mean(diagonal), "easy": _mean(lower), "total": _mean(every)}


def _style_ordered(scored: ScoredItem) -> tuple[list[Score], list[Score]]:
    chosen, rejected = _split(scored)
    styles = scored.item.meta.get("style")
    if styles is not None:
        chosen_styles = [styles[i] for i in scored.item.chosen]
        rejected_styles = [styles[i] for i in scored.item.rejected]
        chosen = [c for _, c in sorted(zip(chosen_styles, chosen, strict=True), key=lambda p: p[0])]
        rejected = [r for _, r in sorted(zip(rejected_styles, rejected, strict=True), key=lambda p: p[0])]
    if len(chosen) != 3 or len(rejected) != 3:
        raise InputError(f"{scored.item.id}: RM-Bench needs 3 chosen and 3 rejected responses")
    return chosen, rejected


def rm_bench_outcome(scored: ScoredItem) -> ItemOutcome:
    chosen, rejected = _style_ordered(scored)
    cells = rm_bench_cells(rm_bench_matrix(chosen, rejected))
    cells_alt = rm_bench_cells(rm_bench_matrix(chosen, rejected, tie_value=0.5))
    tie = any(ties_with(c, r) for c in chosen for r in rejected)
    return ItemOutcome(scored.item.id, scored.item.subset, cells["total"], cells_alt["total"], tie, scored.failure_kinds, cells)


def rm_bench_report(scored: Sequence[ScoredItem]) -> BenchmarkReport:
    """RM-Bench: per prompt the 3x3 style matrix; a domain's score is the mean of the nine cells
    over its prompts; overall = mean over domains; hard/normal/easy likewise averaged per domain.

    Subsets are the data files (``chat``, ``code``, ``safety-refuse``, ``safety-response``);
    the two safety files pool into one ``safety`` domain, as the paper reports it. A cell whose
    comparison needs a missing score is 0.
    """
    outcomes = [rm_bench_outcome(s) for s in scored]
    report = aggregate(
        "rm-bench",
        outcomes,
        protocol="RM-Bench 3x3 style matrix: M[i][j] = 1 if s(chosen_i) > s(rejected_j)",
        tie_convention="a tied cell counts 0",
        alt_convention="a tied cell counts 0.5",
        overall="micro",
    )
    domains: dict[str, list[ItemOutcome]] = {}
    for outcome in outcomes:
        domains.setdefault(RM_BENCH_DOMAINS.get(outcome.subset, outcome.subset), []).append(outcome)
    per_domain = {name: subset_report(name, group) for name, group in domains.items()}
    for name, domain in per_domain.items():
        report.metrics[f"domain:{name}"] = domain.accuracy
    for key in ("hard", "normal", "easy"):
        report.metrics[key] = _mean([d.metrics[key] for d in per_domain.values()])
    report.overall = _mean([d.accuracy for d in per_domain.values()])
    report.overall_alt = _mean([d.accuracy_alt for d in per_domain.values() if d.accuracy_alt is not None])
    cleans = [d.accuracy_without_failures for d in per_domain.values() if d.accuracy_without_failures is not None]
    report.overall_without_failures = _mean(cleans) if cleans else None
    report.overall_rule = "mean over domains (safety-refuse + safety-response pooled as safety) of the mean 9-cell score"
    if "math" not in per_domain:
        report.notes.append("no math domain in these files: overall is over the domains present, not the paper's four")
    return report


# --- best-of-N selection with known quality ------------------------------------------------


def select_best(scores: Sequence[Score]) -> int:
    """Index of the highest score; ties go to the first index; missing scores never win.
    When every score is missing, all tie and index 0 is returned."""
    best = 0
    best_score: float | None = None
    for index, score in enumerate(scores):
        if score is not None and (best_score is None or score > best_score):
            best, best_score = index, score
    return best


def selection_outcome(scored: ScoredItem) -> ItemOutcome:
    """Did the judge's pick have top quality? The alternative credit breaks ties in the judge's
    scores uniformly at random instead of by first index (the expected accuracy)."""
    quality = scored.item.meta.get("quality")
    if quality is None or len(quality) != len(scored.item.responses):
        raise InputError(f"{scored.item.id}: best-of-N selection needs meta['quality'] per response")
    values = scored.values
    top_quality = max(quality)
    picked = select_best(values)
    present = [v for v in values if v is not None]
    top_score = max(present) if present else None
    tied = [i for i, v in enumerate(values) if v == top_score] if present else list(range(len(values)))
    expected = sum(1.0 for i in tied if quality[i] == top_quality) / len(tied)
    qualities = list(quality)
    return ItemOutcome(
        scored.item.id,
        scored.item.subset,
        1.0 if quality[picked] == top_quality else 0.0,
        expected,
        len(tied) > 1,
        scored.failure_kinds,
        {
            "selected_quality": float(quality[picked]),
            "mean_quality": _mean(qualities),
            "max_quality": float(top_quality),
            "min_quality": float(min(qualities)),
        },
    )


def best_of_n_selection_report(scored: Sequence[ScoredItem]) -> BenchmarkReport:
    """Best-of-N selection on groups with known quality.

    ``accuracy`` = the pick (highest score, ties to the first index) has top quality;
    ``metrics``: mean selected quality against the group mean (= random selection's
    expectation), the oracle max, and ``normalized_gain`` = (selected - mean) / (max - mean)
    over the groups where max > mean.
    """
    outcomes = [selection_outcome(s) for s in scored]
    report = aggregate(
        "best-of-n",
        outcomes,
        protocol="best-of-N selection: the highest-scored response has top quality",
        tie_convention="ties in the judge's scores go to the first index",
        alt_convention="ties in the judge's scores broken uniformly at random (expected accuracy)",
    )
    for key in ("selected_quality", "mean_quality", "max_quality"):
        report.metrics[key] = _mean([o.values[key] for o in outcomes])
    report.metrics["random_selection_quality"] = report.metrics["mean_quality"]
    gains = [
        (o.values["selected_quality"] - o.values["mean_quality"]) / (o.values["max_quality"] - o.values["mean_quality"])
        for o in outcomes
        if o.values["max_quality"] > o.values["mean_quality"]
    ]
    if gains:
        report.metrics["normalized_gain"] = _mean(gains)
    return report


# --- registry ------------------------------------------------------------------------------


def _benchmark_of(scored: Sequence[ScoredItem]) -> str:
    names = {s.item.benchmark for s in scored}
    return names.pop() if len(names) == 1 else "mixed"


Metric = Callable[[Sequence[ScoredItem]], BenchmarkReport]

METRICS: dict[str, Metric] = {
    "pairs": lambda scored: pairwise_report(scored, "pairs"),
    "llmbar": lambda scored: pairwise_report(scored, "llmbar"),
    "rewardbench": rewardbench_report,
    "judgebench": judgebench_report,
    "rewardbench2": rewardbench2_report,
    "longform-rewardbench": longform_rewardbench_report,
    "rm-bench": rm_bench_report,
    "best-of-n": best_of_n_selection_report,
    "needle": lambda scored: pairwise_report(scored, "needle"),  # per perturbation kind; the grid is needle.needle_grid
}
"""Benchmark (loader) name -> its metric, for pointwise scores."""


def compute_report(scored: Sequence[ScoredItem], benchmark: str | None = None) -> BenchmarkReport:
    """The report for scored items of one benchmark (taken from the items unless given)."""
    name = benchmark or _benchmark_of(scored)
    try:
        metric = METRICS[name]
    except KeyError:
        raise InputError(f"no metric for benchmark {name!r}; expected one of {sorted(METRICS)}") from None
    return metric(scored)
