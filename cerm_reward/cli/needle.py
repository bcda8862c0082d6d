"""``cerm needle build``: Long-form RewardBench's needle-in-a-haystack pairs (``cerm needle eval`` is ``cerm eval``)."""

from __future__ import annotations

import asyncio
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from cerm_reward.cli.flags import JudgeFlags, judge_settings
from cerm_reward.cli.options import (
    BaseUrlOption,
    ConfigOption,
    EngineOption,
    EvalTokensOption,
    ModelOption,
    VerboseOption,
    configure_logging,
    console,
)
from cerm_reward.config import CermConfig
from cerm_reward.data.items import EvalItem
from cerm_reward.errors import ConfigError
from cerm_reward.jsonl import write_jsonl


def needle_build(
    bases: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="Long responses: {id?, prompt, response} per row.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Items JSONL to write (input of `cerm needle eval`).")],
    facts: Annotated[
        Optional[Path], typer.Option("--facts", exists=True, dir_okay=False, help="{true, false} fact pairs.")
    ] = None,
    safety: Annotated[
        Optional[Path], typer.Option("--safety", exists=True, dir_okay=False, help="{safe, harmful} phrases.")
    ] = None,
    rewrite: Annotated[bool, typer.Option("--rewrite", help="Also plant an error in each chunk with the judge engine.")] = False,
    seed: Annotated[int, typer.Option("--seed", help="Chunk and fact selection seed (same inputs + seed = same items).")] = 0,
    per_1000: Annotated[
        Optional[float], typer.Option("--per-1000", min=0.1, help="Chunks tagged per 1,000 words [default: the paper's].")
    ] = None,
    min_words: Annotated[
        Optional[int], typer.Option("--min-words", min=1, help="Smallest chunk, in words [default: the builder's].")
    ] = None,
    config: ConfigOption = None,
    model: ModelOption = None,
    engine: EngineOption = None,
    base_url: BaseUrlOption = None,
    eval_max_tokens: EvalTokensOption = None,
    verbose: VerboseOption = False,
) -> None:
    """Build minimal pairs that differ in one chunk of a long response, for each perturbation given."""
    configure_logging(verbose)
    if not (facts or safety or rewrite):
        raise ConfigError("give at least one perturbation: --facts, --safety or --rewrite")
    flags = JudgeFlags(model=model, engine=engine, base_url=base_url, eval_max_tokens=eval_max_tokens)
    settings = judge_settings(config, flags)
    chunking = {"seed": seed, "per_1000": per_1000, "min_words": min_words}
    chunking = {name: value for name, value in chunking.items() if value is not None}
    items = asyncio.run(_build_needles(bases, facts, safety, rewrite, settings, chunking))
    write_jsonl((item.to_dict() for item in items), output)
    by_kind: dict[str, int] = {}
    for item in items:
        by_kind[item.subset] = by_kind.get(item.subset, 0) + 1
    kinds = ", ".join(f"{kind}={count}" for kind, count in by_kind.items()) or "none"
    console.print(f"wrote {len(items)} needle pairs ({kinds}) to {output}")


async def _build_needles(
    bases_path: Path,
    facts: Optional[Path],
    safety: Optional[Path],
    rewrite: bool,
    settings: CermConfig,
    chunking: dict[str, Any],
) -> list[EvalItem]:
    from cerm_reward.evaluation import needle

    bases = needle.load_needle_bases(bases_path)
    perturbations: list[needle.Perturbation] = []
    if facts:
        perturbations.append(needle.FactPerturbation(needle.load_fact_pairs(facts)))
    if safety:
        perturbations.append(needle.SafetyPerturbation(needle.load_safety_phrases(safety)))
    async with AsyncExitStack() as stack:
        if rewrite:
            from cerm_reward.engines import GenerationParams, opened_engine

            engine = await stack.enter_async_context(opened_engine(settings.engine))
            params = GenerationParams.of(settings.judge.evaluation)

            async def plant_error(chunk: str) -> str:
                result = await engine.chat(needle.rewrite_messages(chunk), params)
                return result.completions[0].text

            perturbations.append(needle.RewritePerturbation(plant_error))
        items: list[EvalItem] = []
        for perturbation in perturbations:
            items += await needle.build_needle_items(bases, perturbation, **chunking)
        return items
