"""Token budgets that fit the judge model, settled before its engine loads.

The configuration's defaults are CE-RM-4B's (criteria 4096, evaluation 8192 tokens, from a
public CE-RM-4B evaluation script), while the model used when none is named is the embedded
SmolLM2-135M with an 8192-token context: an 8192-token evaluation leaves no room for its
prompt, and at CPU speed a 135M model that rambles to an 8192-token budget, re-sampled twice,
takes tens of minutes on a small file. So, for the embedded judge only, budgets and the failure
policy the user did not set come from :data:`EMBEDDED_PROFILE` and :data:`EMBEDDED_FAILURE_POLICY`
(the values of ``examples/embedded-smoke.yaml``'s kind: short turns, the repair turn on, since the
small model rarely writes ``\boxed{}``); and for every model whose context is known before start-up (the
embedded one, a local folder, ``engine.max_model_len``) a budget that cannot fit is refused
here, naming the flag to change, instead of a minute later by the engine.
"""

from __future__ import annotations

import logging

from cerm_reward.config import CermConfig, CermJudgeConfig, CriticJudgeConfig, FailurePolicy, SamplingConfig
from cerm_reward.engines.context import context_length
from cerm_reward.errors import ConfigError
from cerm_reward.judges.registry import judge_kind

logger = logging.getLogger(__name__)

EMBEDDED_PROFILE = {"criteria": 256, "evaluation": 256}
"""CE-RM budgets for the embedded judge when none are given: short enough for a CPU."""

EMBEDDED_FAILURE_POLICY = FailurePolicy(max_resamples=1, repair=True)
"""The failure policy of the embedded judge when the configuration sets none: one re-sample, then
the constrained repair turn (a weak judge rarely writes the score format)."""


def fit_budgets(config: CermConfig) -> CermConfig:
    """``config`` with the embedded profile applied where budgets were left at their defaults;
    :class:`ConfigError` when a budget cannot fit the model's known context."""
    config = _with_embedded_profile(config)
    context = context_length(config.judge_engine)
    if context is not None:
        for key, budget in _budgets(config):
            if budget + _margin(config) >= context:
                raise ConfigError(
                    f"judge.{key}.max_tokens={budget} leaves no room for the prompt in the {context}-token context "
                    f"of the judge model; lower it ({_flag_of(config, key)}) or raise engine.max_model_len"
                )
    return config


def _with_embedded_profile(config: CermConfig) -> CermConfig:
    judge = config.judge
    if not isinstance(judge, CermJudgeConfig) or config.engine.kind != "vllm" or config.engine.model is not None:
        return config
    updates: dict[str, object] = {
        name: getattr(judge, name).model_copy(update={"max_tokens": tokens})
        for name, tokens in EMBEDDED_PROFILE.items()
        if not _set_explicitly(judge, name)
    }
    if "failure" not in judge.model_fields_set:
        updates["failure"] = EMBEDDED_FAILURE_POLICY
    if not updates:
        return config
    logger.debug("embedded judge: default %s (set them in the judge section to change)", sorted(updates))
    return config.model_copy(update={"judge": judge.model_copy(update=updates)})


def _set_explicitly(judge: CermJudgeConfig, turn: str) -> bool:
    sampling: SamplingConfig = getattr(judge, turn)
    return turn in judge.model_fields_set and "max_tokens" in sampling.model_fields_set


def _budgets(config: CermConfig) -> list[tuple[str, int]]:
    judge = config.judge
    if isinstance(judge, CriticJudgeConfig):
        return [("critique", judge.critique.max_tokens)]
    return [("criteria", judge.criteria.max_tokens), ("evaluation", judge.evaluation.max_tokens)]


def _margin(config: CermConfig) -> int:
    return config.judge.context_margin_tokens if isinstance(config.judge, CermJudgeConfig) else 0


def _flag_of(config: CermConfig, key: str) -> str:
    """The CLI flag that sets ``judge.<key>.max_tokens`` for this kind (the key itself in a config file)."""
    for parameter, dotted in judge_kind(config.judge.kind).flags.items():
        if dotted == f"judge.{key}.max_tokens":
            return "--" + parameter.replace("_", "-") + " or judge." + key + ".max_tokens"
    return f"judge.{key}.max_tokens"
