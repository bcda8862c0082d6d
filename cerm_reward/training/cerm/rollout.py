"""CE-RM's two-stage rollout of one preference pair, at the token level, framework-free.

Stage 1 samples K_c criteria for the query; stage 2 samples, under each criteria, n evaluations
of the chosen and n of the rejected response. Each of the K_c * (1 + 2n) generations is its own
trajectory: its prompt is what the judge saw (the published prompts, the criteria replayed whole
as the assistant turn), its response is exactly the generated token ids, so no prompt or
injected token is ever trainable. Evaluations are parsed with the judge's own parser, rewards
and grouped advantages come from :mod:`rewards` and :mod:`advantages`.

The trainer supplies three callables: ``render`` (chat messages -> prompt token ids, the
trainer's own tokenisation path), ``generate`` (prompt ids + budget -> generated ids) and
``decode``. Trajectories are ordered criteria first, then for each criteria its chosen and
then its rejected evaluations; :func:`trajectory_index` gives a trajectory's place.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from cerm_reward.errors import ConfigError
from cerm_reward.judges.parsing import extract_criteria_items, parse_evaluation
from cerm_reward.judges.templates import JudgeTemplate
from cerm_reward.training.cerm.advantages import Branch, pair_advantages
from cerm_reward.training.cerm.rewards import PairRewards, pair_rewards
from cerm_reward.training.cerm.settings import TwoStageSettings

Render = Callable[[list[dict[str, str]]], Awaitable[list[int]]]
Decode = Callable[[list[int]], str]


@dataclass(frozen=True)
class Generated:
    """One generation: its token ids, their log-probs when the engine gave them, and whether it ended by itself."""

    token_ids: list[int]
    log_probs: list[float] | None
    finished: bool


Generate = Callable[[list[int], dict[str, Any]], Awaitable[Generated]]
"""(prompt ids, sampling params incl. ``max_tokens``) -> the generation."""


class StagePromptTooLongError(ConfigError):
    """A stage prompt exceeds ``max_prompt_length``: refused instead of being left-truncated by the trainer."""


@dataclass
class Trajectory:
    """One trained sequence of the pair's rollout."""

    branch: Branch
    criteria_index: int
    response_index: int
    """j (chosen) or k (rejected) within its criteria; 0 for a criteria trajectory."""
    prompt_ids: list[int]
    response_ids: list[int]
    log_probs: list[float] | None
    text: str
    finished: bool
    score: float | None = None
    failure: str | None = None
    reward: float = 0.0
    advantage: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)


def trajectory_index(settings: TwoStageSettings, branch: Branch, criteria_index: int, response_index: int = 0) -> int:
    """Place of a trajectory in the rollout's order (criteria, then per criteria: chosen, rejected)."""
    n, k = settings.evaluations_per_response, settings.num_criteria
    if branch is Branch.CRITERIA:
        return criteria_index
    offset = 0 if branch is Branch.CHOSEN else n
    return k + criteria_index * 2 * n + offset + response_index


def _sampling(settings: TwoStageSettings, base: dict[str, Any], turn: str) -> dict[str, Any]:
    config = getattr(settings, turn)
    params = {**base, "max_tokens": config.max_tokens, "temperature": config.temperature, "top_p": config.top_p}
    if config.seed is not None:
        params["seed"] = config.seed
    return params


async def _prompt(render: Render, messages: list[dict[str, str]], max_prompt_length: int, what: str) -> list[int]:
    ids = await render(messages)
    if len(ids) > max_prompt_length:
        raise StagePromptTooLongError(
            f"the {what} prompt has {len(ids)} tokens, above max_prompt_length={max_prompt_length}; "
            "curate the data with `cerm train prepare-data --max-prompt-length` set to the run's value, "
            "or raise data.max_prompt_length"
        )
    return ids


async def two_stage_rollout(
    *,
    query: str,
    chosen: str,
    rejected: str,
    settings: TwoStageSettings,
    template: JudgeTemplate,
    render: Render,
    generate: Generate,
    decode: Decode,
    max_prompt_length: int,
    base_sampling: dict[str, Any] | None = None,
) -> tuple[list[Trajectory], PairRewards]:
    """All trajectories of one pair with their scores, rewards and grouped advantages."""
    base = dict(base_sampling or {})
    criteria_prompt = await _prompt(render, template.criteria_messages(query), max_prompt_length, "criteria")
    criteria_params = _sampling(settings, base, "criteria")
    criteria_runs = await asyncio.gather(
        *(generate(list(criteria_prompt), criteria_params) for _ in range(settings.num_criteria))
    )
    criteria: list[Trajectory] = []
    for i, run in enumerate(criteria_runs):
        text = decode(run.token_ids)
        failure = None if run.finished else "truncated"
        if failure is None and not extract_criteria_items(text):
            failure = "bad_criteria"
        criteria.append(
            Trajectory(
                Branch.CRITERIA, i, 0, list(criteria_prompt), run.token_ids, run.log_probs, text, run.finished, failure=failure
            )
        )

    async def evaluate(trajectory_of: Trajectory, branch: Branch, j: int, response: str) -> Trajectory:
        messages = template.evaluation_messages(query, trajectory_of.text, response)
        prompt = await _prompt(render, messages, max_prompt_length, f"{branch.value}-evaluation")
        run = await generate(prompt, _sampling(settings, base, "evaluation"))
        text = decode(run.token_ids)
        parsed = parse_evaluation(text, finished=run.finished, score_range=settings.score_range)
        return Trajectory(
            branch, trajectory_of.criteria_index, j, prompt, run.token_ids, run.log_probs, text, run.finished,
            score=parsed.score, failure=parsed.failure.value if parsed.failure else None,
        )  # fmt: skip

    n = settings.evaluations_per_response
    evaluations = await asyncio.gather(
        *(
            evaluate(c, branch, j, chosen if branch is Branch.CHOSEN else rejected)
            for c in criteria
            for branch in (Branch.CHOSEN, Branch.REJECTED)
            for j in range(n)
        )
    )
    per_criteria = [evaluations[i * 2 * n : (i + 1) * 2 * n] for i in range(settings.num_criteria)]
    rewards = pair_rewards(
        [[t.score for t in block[:n]] for block in per_criteria],
        [[t.score for t in block[n:]] for block in per_criteria],
        settings.rewards,
        criteria_failed=[c.failure is not None for c in criteria],
    )
    advantages = pair_advantages(rewards, settings.advantages)
    for i, c in enumerate(criteria):
        c.reward, c.advantage = rewards.criteria[i], advantages.criteria[i]
    for i, block in enumerate(per_criteria):
        for j, t in enumerate(block[:n]):
            t.reward, t.advantage = rewards.chosen[i][j], advantages.chosen[i][j]
        for k, t in enumerate(block[n:]):
            t.reward, t.advantage = rewards.rejected[i][k], advantages.rejected[i][k]
    return [*criteria, *evaluations], rewards
