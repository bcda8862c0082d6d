"""Budgets settled before an engine loads: the embedded profile, and refusals that name the flag."""

from __future__ import annotations

import json

import pytest

from cerm_reward.config import CermConfig
from cerm_reward.engines.context import EMBEDDED_CONTEXT_TOKENS, checkpoint_context, context_length
from cerm_reward.engines.embedded import embedded_checkpoint
from cerm_reward.errors import ConfigError
from cerm_reward.judges.budgets import EMBEDDED_FAILURE_POLICY, EMBEDDED_PROFILE, fit_budgets


def test_the_defaults_fit_the_embedded_judge_through_its_profile():
    """No config, no flags: the command a newcomer types must not stop on the budgets."""
    fitted = fit_budgets(CermConfig())
    assert context_length(fitted.judge_engine) == EMBEDDED_CONTEXT_TOKENS == checkpoint_context(embedded_checkpoint())
    assert (fitted.judge.criteria.max_tokens, fitted.judge.evaluation.max_tokens) == (
        EMBEDDED_PROFILE["criteria"],
        EMBEDDED_PROFILE["evaluation"],
    )


def test_the_embedded_judge_repairs_by_default_unless_the_policy_is_set():
    assert fit_budgets(CermConfig()).judge.failure == EMBEDDED_FAILURE_POLICY
    assert EMBEDDED_FAILURE_POLICY.repair and EMBEDDED_FAILURE_POLICY.max_resamples == 1
    chosen = CermConfig().with_overrides({"judge.failure.max_resamples": 3})
    assert fit_budgets(chosen).judge.failure == chosen.judge.failure  # a set policy is the user's, whole
    named = CermConfig().with_overrides({"engine.model": "PKU-ONELab/CE-RM-4B"})
    assert fit_budgets(named).judge.failure == CermConfig().judge.failure  # CE-RM-4B keeps the defaults


def test_budgets_the_user_set_are_kept_or_refused_never_rewritten():
    chosen = CermConfig().with_overrides({"judge.evaluation.max_tokens": 300})
    fitted = fit_budgets(chosen.with_overrides({"engine.max_model_len": 4096}))
    assert (fitted.judge.criteria.max_tokens, fitted.judge.evaluation.max_tokens) == (EMBEDDED_PROFILE["criteria"], 300)
    too_long = CermConfig().with_overrides({"judge.evaluation.max_tokens": 8192, "engine.max_model_len": 8192})
    with pytest.raises(ConfigError, match=r"judge.evaluation.max_tokens=8192 .* 8192-token context .*--eval-max-tokens"):
        fit_budgets(too_long)


def test_a_file_that_sets_budgets_keeps_them(tmp_path):
    config = tmp_path / "judge.yaml"
    config.write_text("judge:\n  criteria: {max_tokens: 64}\n  evaluation: {max_tokens: 96}\nengine: {max_model_len: 2048}\n")
    fitted = fit_budgets(CermConfig.from_file(config))
    assert (fitted.judge.criteria.max_tokens, fitted.judge.evaluation.max_tokens) == (64, 96)


def test_a_local_checkpoint_is_checked_against_its_own_config(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"text_config": {"max_position_embeddings": 4096}}))
    assert checkpoint_context(tmp_path) == 4096
    named = CermConfig().with_overrides({"engine.model": str(tmp_path)})
    with pytest.raises(ConfigError, match="judge.criteria.max_tokens=4096 .* 4096-token .*--criteria-max-tokens"):
        fit_budgets(named)  # CE-RM-4B's defaults are not rewritten for a model the user named
    fitting = named.with_overrides({"judge.criteria.max_tokens": 1024, "judge.evaluation.max_tokens": 2048})
    assert fit_budgets(fitting) == fitting


def test_unknown_contexts_are_left_to_the_engine():
    remote = CermConfig().with_overrides({"engine.kind": "http", "engine.base_url": "127.0.0.1:1"})
    assert context_length(remote.judge_engine) is None
    assert fit_budgets(remote).judge.evaluation.max_tokens == 8192
    hub = CermConfig().with_overrides({"engine.model": "PKU-ONELab/CE-RM-4B"})
    assert fit_budgets(hub) == hub


def test_the_critic_budget_is_checked_with_its_own_flag(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"max_position_embeddings": 1024}))
    critic = CermConfig().with_overrides({"judge.kind": "critic_rm", "judge.checkpoint": str(tmp_path)})
    with pytest.raises(ConfigError, match=r"judge.critique.max_tokens=1024 .*--eval-max-tokens"):
        fit_budgets(critic)
