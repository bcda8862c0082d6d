"""The curation path of ``cerm train prepare-data``, in order, as one call the CLI and tests share."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from cerm_reward.config import CermJudgeConfig
from cerm_reward.data.pairs import PreferencePair
from cerm_reward.errors import ConfigError
from cerm_reward.judges.templates import load_template
from cerm_reward.training.cerm.curation import (
    CurationReport,
    deduplicate,
    drop_degenerate,
    fit_prompt_length,
    keep_informative,
    tally_difficulty,
)


@dataclass(frozen=True)
class CurationOptions:
    """What the curation keeps. ``max_prompt_length`` and ``criteria_max_tokens`` must be the training run's."""

    max_prompt_length: int
    criteria_max_tokens: int
    template: str = "cerm-v1"
    chat_template_kwargs: dict[str, Any] | None = None
    difficulty_rounds: int = 0
    """0 = no difficulty filter; k >= 2 scores each pair k times with the current judge."""


async def curate(
    pairs: Sequence[PreferencePair],
    options: CurationOptions,
    *,
    tokenizer: Any,
    engine: Any = None,
    judge_config: CermJudgeConfig | None = None,
    on_pair_judged: Callable[[], None] | None = None,
) -> tuple[list[PreferencePair], CurationReport]:
    """Degenerate -> duplicates -> prompt length -> (difficulty); returns the kept pairs and the counts."""
    if options.difficulty_rounds == 1 or options.difficulty_rounds < 0:
        raise ConfigError("difficulty_rounds: 0 (off) or at least 2 (one round cannot be both right and wrong)")
    report = CurationReport(read=len(pairs))
    kept = deduplicate(drop_degenerate(pairs, report), report)
    kept = fit_prompt_length(
        kept,
        report,
        tokenizer=tokenizer,
        template=load_template(options.template),
        max_prompt_length=options.max_prompt_length,
        criteria_max_tokens=options.criteria_max_tokens,
        chat_template_kwargs=options.chat_template_kwargs,
    )
    if options.difficulty_rounds:
        if engine is None:
            raise ValueError("the difficulty filter needs a judge engine")
        tallies = await tally_difficulty(
            kept, engine, judge_config or CermJudgeConfig(), rounds=options.difficulty_rounds, on_pair_done=on_pair_judged
        )
        kept = keep_informative(kept, tallies, report)
    report.kept = len(kept)
    return kept, report
