"""Stage 1 of Critic-RM: self-generated critiques, the consistency filter, meta-judge refinement.

For every preference pair the critic (any :class:`~cerm_reward.engines.base.Engine`) writes k
critiques of the chosen and k of the rejected response, each ending with a ``\\boxed{}`` score
read by CE-RM's parser. The instance-level consistency filter keeps a pair only when its
critiques agree with the label; a meta-judge then refines each side's consistent critiques by
ranking them (keep the best) or summarising them. Every pair becomes one JSONL record that says
which critique was kept and why, dropped pairs included, so a training set can be audited and
the head can still learn from the labels the filter dropped.
"""

from __future__ import annotations

import asyncio
import statistics
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from cerm_reward.data.pairs import PreferencePair
from cerm_reward.engines.base import CallFailed, Engine, GenerationParams, Messages, chat_within
from cerm_reward.errors import InputError
from cerm_reward.jsonl import read_jsonl
from cerm_reward.judges.critic_rm.templates import CriticTemplate, load_critic_template
from cerm_reward.judges.parsing import find_boxed, parse_evaluation, parse_number
from cerm_reward.judges.repair import ScoreRepair
from cerm_reward.results import RECOVERABLE_BY_REPAIR, FailureKind
from cerm_reward.training.critic_rm.config import BuildConfig

RECORD_FORMAT = "critic-rm-build-v1"


@dataclass
class CritiqueSample:
    """One sampled critique: its text and the score it ends with, or why it has none."""

    text: str
    score: float | None
    failure: str | None = None
    detail: str | None = None
    repaired: bool = False


@dataclass(frozen=True)
class FilterDecision:
    """The instance-level consistency filter on one pair's critique scores.

    Kept iff mean(valid chosen scores) > mean(valid rejected scores) (a tie is dropped). Inside
    a kept pair a chosen critique is consistent when its score is above the rejected mean, a
    rejected one when its score is below the chosen mean, so each side keeps at least one.
    """

    kept: bool
    reason: str
    """``agrees``, ``tie``, ``disagrees``, ``no_valid_chosen_score`` or ``no_valid_rejected_score``."""
    chosen_mean: float | None
    rejected_mean: float | None
    consistent_chosen: list[int]
    consistent_rejected: list[int]


def consistency_filter(chosen: Sequence[CritiqueSample], rejected: Sequence[CritiqueSample]) -> FilterDecision:
    """Apply the filter to the k critiques of each side (failed samples carry no vote)."""
    chosen_scores = {i: s.score for i, s in enumerate(chosen) if s.score is not None}
    rejected_scores = {i: s.score for i, s in enumerate(rejected) if s.score is not None}
    if not chosen_scores:
        return FilterDecision(False, "no_valid_chosen_score", None, None, [], [])
    if not rejected_scores:
        return FilterDecision(False, "no_valid_rejected_score", statistics.fmean(chosen_scores.values()), None, [], [])
    chosen_mean = statistics.fmean(chosen_scores.values())
    rejected_mean = statistics.fmean(rejected_scores.values())
    if chosen_mean <= rejected_mean:
        reason = "tie" if chosen_mean == rejected_mean else "disagrees"
        return FilterDecision(False, reason, chosen_mean, rejected_mean, [], [])
    return FilterDecision(
        True,
        "agrees",
        chosen_mean,
        rejected_mean,
        [i for i, score in chosen_scores.items() if score > rejected_mean],
        [i for i, score in rejected_scores.items() if score < chosen_mean],
    )


@dataclass
class Refined:
    """The critique a training pair uses for one response, and where it came from."""

    text: str
    source: str
    """``rank``, ``summary``, ``only_consistent``, ``unrefined`` (refinement off: the first consistent),
    ``fallback_first_consistent`` (the meta-judge failed) or ``unfiltered_first_valid`` (a dropped pair)."""
    picked: list[int]
    """Indices of the samples it was made from."""
    meta_reply: str | None = None
    failure: str | None = None
    """Why the meta-judge's answer was not used (a :class:`FailureKind` value or ``inconsistent_summary``)."""
    detail: str | None = None
    score: float | None = None
    """The score the critique ends with (a summary's own score; a sample's score otherwise)."""


@dataclass
class BuildStats:
    pairs: int = 0
    kept: int = 0
    drop_reasons: Counter[str] = field(default_factory=Counter)
    sample_failures: Counter[str] = field(default_factory=Counter)
    """Critique samples left without a score, by kind (after repair)."""
    repairs_attempted: int = 0
    repairs_succeeded: int = 0
    meta_calls: int = 0
    meta_failures: Counter[str] = field(default_factory=Counter)

    def to_dict(self) -> dict[str, Any]:
        return {
            "pairs": self.pairs,
            "kept": self.kept,
            "drop_reasons": dict(self.drop_reasons),
            "sample_failures": dict(self.sample_failures),
            "repairs_attempted": self.repairs_attempted,
            "repairs_succeeded": self.repairs_succeeded,
            "meta_calls": self.meta_calls,
            "meta_failures": dict(self.meta_failures),
        }


def rank_regex(count: int) -> str:
    """``\\boxed{i}`` with i in 1..count."""
    return r"\\boxed\{(?:" + "|".join(str(i) for i in range(count, 0, -1)) + r")\}"


def parse_rank(reply: str, count: int) -> tuple[int | None, FailureKind | None, str | None]:
    """The 0-based index the meta-judge picked (last non-empty box), or the failure kind."""
    boxes = [box for box in find_boxed(reply) if box.content.strip()]
    if not boxes:
        return None, FailureKind.NO_SCORE, "no \\boxed{} review number in the reply"
    value = parse_number(boxes[-1].content)
    if value is None or value != int(value) or not 1 <= value <= count:
        return None, FailureKind.OUT_OF_RANGE, f"review number {boxes[-1].content[:20]!r} not in 1..{count}"
    return int(value) - 1, None, None


class CritiqueDataBuilder:
    """Turns preference pairs into Critic-RM training records through any engine."""

    def __init__(self, engine: Engine, config: BuildConfig | None = None, template: CriticTemplate | None = None) -> None:
        self.engine = engine
        self.config = config or BuildConfig()
        self.template = template or load_critic_template(self.config.template)
        self.stats = BuildStats()
        self._repair_turn = ScoreRepair(self.template.repair, self.config.score_range, self.config.repair_max_tokens)

    async def build(
        self, pairs: Sequence[PreferencePair], on_record: Callable[[dict[str, Any]], None] | None = None
    ) -> list[dict[str, Any]]:
        """One record per pair, in input order; ``on_record`` sees each as it finishes (progress, writing)."""
        gate = asyncio.Semaphore(self.config.concurrency)

        async def one(pair: PreferencePair) -> dict[str, Any]:
            async with gate:
                record = await self.build_pair(pair)
            if on_record is not None:
                on_record(record)
            return record

        return list(await asyncio.gather(*(one(pair) for pair in pairs)))

    async def build_pair(self, pair: PreferencePair) -> dict[str, Any]:
        chosen, rejected = await asyncio.gather(
            self.sample_critiques(pair.query, pair.chosen), self.sample_critiques(pair.query, pair.rejected)
        )
        decision = consistency_filter(chosen, rejected)
        if decision.kept:
            chosen_refined, rejected_refined = await asyncio.gather(
                self._refine(pair.query, pair.chosen, chosen, decision.consistent_chosen, "chosen", decision),
                self._refine(pair.query, pair.rejected, rejected, decision.consistent_rejected, "rejected", decision),
            )
        else:
            chosen_refined, rejected_refined = _first_valid(chosen), _first_valid(rejected)
        self.stats.pairs += 1
        if decision.kept:
            self.stats.kept += 1
        else:
            self.stats.drop_reasons[decision.reason] += 1
        return {
            "format": RECORD_FORMAT,
            "id": pair.id,
            "prompt": pair.query,
            "chosen": pair.chosen,
            "rejected": pair.rejected,
            "kept": decision.kept,
            "chosen_critique": chosen_refined.text,
            "rejected_critique": rejected_refined.text,
            "provenance": {
                "filter": asdict(decision),
                "chosen": asdict(chosen_refined),
                "rejected": asdict(rejected_refined),
                "chosen_samples": [asdict(s) for s in chosen],
                "rejected_samples": [asdict(s) for s in rejected],
                "template": self.template.version,
                "critic_model": self.engine.model_id,
                "refinement": self.config.refinement,
            },
        }

    async def sample_critiques(self, prompt: str, response: str) -> list[CritiqueSample]:
        """k critiques of one response, each parsed (and repaired when configured)."""
        k = self.config.critiques_per_response
        messages = self.template.critique_messages(prompt, response)
        try:
            result = await self._call(messages, GenerationParams.of(self.config.critique, n=k))
        except CallFailed as error:
            self.stats.sample_failures.update([error.kind.value] * k)
            return [CritiqueSample("", None, error.kind.value, error.detail) for _ in range(k)]
        samples = []
        for completion in result.completions:
            parsed = parse_evaluation(completion.text, finished=completion.finished, score_range=self.config.score_range)
            sample = CritiqueSample(
                completion.text, parsed.score, parsed.failure.value if parsed.failure else None, parsed.detail
            )
            samples.append(sample)
        if self.config.repair:
            await asyncio.gather(*(self._repair(messages, s) for s in samples if _recoverable(s)))
        self.stats.sample_failures.update(s.failure for s in samples if s.failure is not None)
        return samples

    async def _repair(self, messages: Messages, sample: CritiqueSample) -> None:
        self.stats.repairs_attempted += 1
        try:
            reply = await self._repair_turn.ask(self._call, messages, sample.text)
        except CallFailed:
            return
        if reply.score is not None:
            self.stats.repairs_succeeded += 1
            assert sample.failure is not None
            sample.detail = reply.detail(sample.failure)
            sample.score, sample.failure, sample.repaired = reply.score, None, True

    async def _refine(
        self,
        prompt: str,
        response: str,
        samples: list[CritiqueSample],
        consistent: list[int],
        side: str,
        decision: FilterDecision,
    ) -> Refined:
        first = consistent[0]
        if len(consistent) == 1:
            return Refined(samples[first].text, "only_consistent", [first], score=samples[first].score)
        if self.config.refinement == "none":
            return Refined(samples[first].text, "unrefined", [first], score=samples[first].score)
        self.stats.meta_calls += 1
        if self.config.refinement == "rank":
            refined = await self._rank(prompt, response, samples, consistent)
        else:
            refined = await self._summarise(prompt, response, samples, consistent, side, decision)
        if refined.failure is not None:
            self.stats.meta_failures[refined.failure] += 1
        return refined

    async def _rank(self, prompt: str, response: str, samples: list[CritiqueSample], consistent: list[int]) -> Refined:
        texts = [samples[i].text for i in consistent]
        regex = rank_regex(len(texts)) if self.config.rank_constrained else None
        params = GenerationParams.of(self.config.meta, regex=regex)
        try:
            result = await self._call(self.template.rank_messages(prompt, response, texts), params)
        except CallFailed as error:
            return _fallback(samples, consistent, None, error.kind.value, error.detail)
        reply = result.completions[0].text
        picked, failure, detail = parse_rank(reply, len(texts))
        if picked is None:
            assert failure is not None
            return _fallback(samples, consistent, reply, failure.value, detail)
        index = consistent[picked]
        return Refined(samples[index].text, "rank", [index], meta_reply=reply, score=samples[index].score)

    async def _summarise(
        self,
        prompt: str,
        response: str,
        samples: list[CritiqueSample],
        consistent: list[int],
        side: str,
        decision: FilterDecision,
    ) -> Refined:
        texts = [samples[i].text for i in consistent]
        messages = self.template.summarise_messages(prompt, response, texts)
        try:
            result = await self._call(messages, GenerationParams.of(self.config.meta))
        except CallFailed as error:
            return _fallback(samples, consistent, None, error.kind.value, error.detail)
        completion = result.completions[0]
        parsed = parse_evaluation(completion.text, finished=completion.finished, score_range=self.config.score_range)
        if parsed.score is None:
            assert parsed.failure is not None
            return _fallback(samples, consistent, completion.text, parsed.failure.value, parsed.detail)
        assert decision.chosen_mean is not None and decision.rejected_mean is not None
        agrees = parsed.score > decision.rejected_mean if side == "chosen" else parsed.score < decision.chosen_mean
        if not agrees:
            detail = f"summary score {parsed.score:g} contradicts the label ({side})"
            return _fallback(samples, consistent, completion.text, "inconsistent_summary", detail)
        return Refined(completion.text, "summary", list(consistent), meta_reply=completion.text, score=parsed.score)

    async def _call(self, messages: Messages, params: GenerationParams):
        return await chat_within(self.engine, messages, params, self.config.call_timeout_s)


def _recoverable(sample: CritiqueSample) -> bool:
    return sample.failure is not None and FailureKind(sample.failure) in RECOVERABLE_BY_REPAIR


def _fallback(
    samples: list[CritiqueSample], consistent: list[int], reply: str | None, failure: str, detail: str | None
) -> Refined:
    first = consistent[0]
    return Refined(samples[first].text, "fallback_first_consistent", [first], reply, failure, detail, samples[first].score)


def _first_valid(samples: list[CritiqueSample]) -> Refined:
    """A dropped pair's critique for head-only training: the first scored sample, else the first one."""
    index = next((i for i, s in enumerate(samples) if s.score is not None), 0)
    return Refined(samples[index].text, "unfiltered_first_valid", [index], score=samples[index].score)


def read_build_records(path: Path) -> list[dict[str, Any]]:
    """The records of a ``cerm critic build-data`` file; a line of any other kind is an :class:`InputError`."""
    records = []
    for number, record in read_jsonl(path):
        if not isinstance(record, dict) or record.get("format") != RECORD_FORMAT:
            raise InputError(f"{path}:{number}: not a {RECORD_FORMAT} record")
        records.append(record)
    return records
