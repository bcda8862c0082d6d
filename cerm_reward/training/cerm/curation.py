"""Curating preference pairs into judge-training data: clean, de-duplicate, fit, and keep what teaches.

The CE-RM paper trains on about 5.7K pairs curated from an open preference dataset without
saying how; the steps here are the usual ones, each counted in :class:`CurationReport` so a user
sees where pairs went:

1. **degenerate** pairs go: an empty response, or chosen == rejected (no preference to learn);
2. **duplicates** go: same query, chosen and rejected after whitespace normalisation;
3. **too long** pairs go: a stage-2 prompt (query + criteria budget + response) above
   ``max_prompt_length`` in the judge's tokens, which verl would otherwise left-truncate;
4. optionally, **difficulty**: the current judge scores each pair ``rounds`` times with fresh
   criteria each round; a pair it always ranks right teaches nothing (all rewards 1, zero
   advantage) and one it always ranks wrong is likely mislabelled or out of reach, so only
   pairs with at least one right and one wrong round stay. Rounds where the judge gave no score
   are not evidence either way; a pair with no scored round is kept (``unjudged``).
"""

from __future__ import annotations

import asyncio
import unicodedata
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from cerm_reward.config import CermJudgeConfig
from cerm_reward.data.pairs import PreferencePair
from cerm_reward.judges.templates import JudgeTemplate
from cerm_reward.training.cerm.lengths import stage2_prompt_bound


@dataclass
class CurationReport:
    """Where the pairs went; ``difficulty`` counts ``easy``/``hard``/``kept``/``unjudged`` pairs."""

    read: int = 0
    degenerate: int = 0
    duplicates: int = 0
    too_long: int = 0
    difficulty: Counter[str] = field(default_factory=Counter)
    kept: int = 0

    def lines(self) -> list[str]:
        out = [f"read {self.read}", f"degenerate {self.degenerate}", f"duplicates {self.duplicates}", f"too long {self.too_long}"]
        if self.difficulty:
            out.append("difficulty " + ", ".join(f"{k} {v}" for k, v in sorted(self.difficulty.items())))
        out.append(f"kept {self.kept}")
        return out


def _normalised(text: str) -> str:
    return " ".join(unicodedata.normalize("NFC", text).split())


def drop_degenerate(pairs: Iterable[PreferencePair], report: CurationReport) -> list[PreferencePair]:
    kept = []
    for pair in pairs:
        chosen, rejected = _normalised(pair.chosen), _normalised(pair.rejected)
        if not chosen or not rejected or chosen == rejected:
            report.degenerate += 1
        else:
            kept.append(pair)
    return kept


def deduplicate(pairs: Iterable[PreferencePair], report: CurationReport) -> list[PreferencePair]:
    """First occurrence wins; the key is the whitespace-normalised (query, chosen, rejected)."""
    seen: set[tuple[str, str, str]] = set()
    kept = []
    for pair in pairs:
        key = (_normalised(pair.query), _normalised(pair.chosen), _normalised(pair.rejected))
        if key in seen:
            report.duplicates += 1
        else:
            seen.add(key)
            kept.append(pair)
    return kept


def fit_prompt_length(
    pairs: Iterable[PreferencePair],
    report: CurationReport,
    *,
    tokenizer: Any,
    template: JudgeTemplate,
    max_prompt_length: int,
    criteria_max_tokens: int,
    chat_template_kwargs: dict[str, Any] | None = None,
) -> list[PreferencePair]:
    """Keep pairs whose both stage-2 prompts fit ``max_prompt_length`` with any criteria the budget allows."""
    kept = []
    for pair in pairs:
        longest = max(
            stage2_prompt_bound(tokenizer, template, pair.query, response, criteria_max_tokens, chat_template_kwargs)
            for response in (pair.chosen, pair.rejected)
        )
        if longest > max_prompt_length:
            report.too_long += 1
        else:
            kept.append(pair)
    return kept


@dataclass(frozen=True)
class DifficultyTally:
    """The judge's verdicts on one pair over the rounds."""

    right: int
    wrong: int
    unscored: int

    @property
    def verdict(self) -> str:
        """``kept`` (mixed), ``easy`` (always right), ``hard`` (never right) or ``unjudged`` (never scored)."""
        if self.right + self.wrong == 0:
            return "unjudged"
        if self.wrong == 0:
            return "easy"
        if self.right == 0:
            return "hard"
        return "kept"


async def tally_difficulty(
    pairs: Sequence[PreferencePair],
    engine: Any,
    judge_config: CermJudgeConfig,
    *,
    rounds: int,
    concurrency: int = 16,
    on_pair_done: Callable[[], None] | None = None,
) -> list[DifficultyTally]:
    """Score each pair ``rounds`` times with :class:`CermJudge`; right = chosen strictly above rejected.

    Each round uses a fresh judge (a fresh criteria cache), so the rounds sample new criteria
    as the two-stage rollout does. Sample with ``temperature > 0`` or the rounds repeat each other.
    """
    from cerm_reward.judges.cerm.judge import CermJudge

    judges = [CermJudge(engine, judge_config) for _ in range(rounds)]
    gate = asyncio.Semaphore(concurrency)

    async def one(pair: PreferencePair) -> DifficultyTally:
        right = wrong = unscored = 0
        async with gate:
            results = await asyncio.gather(*(judge.score_group(pair.query, [pair.chosen, pair.rejected]) for judge in judges))
        for result in results:
            chosen, rejected = (j.score if j.failure is None else None for j in result.judgements)
            if chosen is None or rejected is None:
                unscored += 1
            elif chosen > rejected:
                right += 1
            else:
                wrong += 1
        if on_pair_done is not None:
            on_pair_done()
        return DifficultyTally(right, wrong, unscored)

    return list(await asyncio.gather(*(one(pair) for pair in pairs)))


def keep_informative(
    pairs: Sequence[PreferencePair], tallies: Sequence[DifficultyTally], report: CurationReport
) -> list[PreferencePair]:
    """The pairs neither always right nor always wrong (and those never scored), counted by verdict."""
    kept = []
    for pair, tally in zip(pairs, tallies, strict=True):
        report.difficulty[tally.verdict] += 1
        if tally.verdict in ("kept", "unjudged"):
            kept.append(pair)
    return kept
