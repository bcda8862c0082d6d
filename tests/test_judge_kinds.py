"""`judge.kind` switches the judge type in every configuration path: YAML, dotted overrides,
command-line flags, the Ray replica's answer and verl's `reward=critic_rm` group."""

from __future__ import annotations

from dataclasses import fields, replace

import pytest
from typer.testing import CliRunner

from cerm_reward.cli.app import app
from cerm_reward.cli.flags import JudgeFlags, judge_settings
from cerm_reward.config import CermConfig, CermJudgeConfig, CriticJudgeConfig, EngineConfig, judge_config_of
from cerm_reward.errors import ConfigError
from cerm_reward.judges.registry import JUDGE_KINDS


def test_a_config_file_names_the_judge_kind(tmp_path):
    path = tmp_path / "critic.yaml"
    path.write_text("judge:\n  kind: critic_rm\n  checkpoint: /models/critic\n  critiques_per_response: 4\n")
    config = CermConfig.from_file(path)
    assert isinstance(config.judge, CriticJudgeConfig) and config.judge.critiques_per_response == 4
    assert isinstance(CermConfig().judge, CermJudgeConfig) and CermConfig().judge.kind == "cerm"  # no kind = CE-RM
    path.write_text("judge:\n  kind: critic_rm\n  template: cerm-v1\n  checkpoint: x\n")
    with pytest.raises(ValueError, match="template"):  # a CE-RM key under critic_rm is an error, not ignored
        CermConfig.from_file(path)


def test_critic_rm_needs_a_checkpoint():
    with pytest.raises(ValueError, match="judge.checkpoint is required"):
        CermConfig.model_validate({"judge": {"kind": "critic_rm"}})


def test_overrides_switch_the_kind_first_and_refuse_to_drop_settings():
    switched = CermConfig().with_overrides({"judge.checkpoint": "/c", "judge.kind": "critic_rm", "judge.critique.max_tokens": 64})
    assert isinstance(switched.judge, CriticJudgeConfig)
    assert switched.judge.checkpoint == "/c" and switched.judge.critique.max_tokens == 64
    tuned = CermConfig().with_overrides({"judge.evaluation.max_tokens": 99})
    with pytest.raises(ValueError, match="cannot be switched to judge.kind=critic_rm"):
        tuned.with_overrides({"judge.kind": "critic_rm", "judge.checkpoint": "/c"})
    with pytest.raises(ValueError, match="judge.kind=critic_rm"):
        CermConfig().with_overrides({"judge.kind": "critic_rm", "judge.checkpoint": "/c", "judge.criteria.max_tokens": 8})
    with pytest.raises(ValueError, match="unknown judge kind"):
        CermConfig().with_overrides({"judge.kind": "pairwise"})


def test_a_critic_checkpoint_is_its_own_critic_unless_another_engine_is_named():
    critic = {"kind": "critic_rm", "checkpoint": "/models/critic"}
    assert CermConfig.model_validate({"judge": critic}).judge_engine.model == "/models/critic"
    named = CermConfig.model_validate({"judge": critic, "engine": {"model": "other"}})
    assert named.judge_engine.model == "other"
    served = CermConfig.model_validate({"judge": critic, "engine": {"kind": "http", "base_url": "http://h:1"}})
    assert served.judge_engine == served.engine and served.judge_engine.model is None
    assert CermConfig().judge_engine == EngineConfig()  # CE-RM: the engine as configured


def test_flags_map_to_the_keys_of_the_chosen_kind(tmp_path):
    flags = JudgeFlags(judge="critic_rm", checkpoint=tmp_path, eval_max_tokens=48, samples=3, model="m")
    config = judge_settings(None, flags)
    assert isinstance(config.judge, CriticJudgeConfig) and config.judge.checkpoint == str(tmp_path)
    assert config.judge.critique.max_tokens == 48 and config.judge.critiques_per_response == 3
    assert config.engine.model == "m"
    cerm = judge_settings(None, JudgeFlags(eval_max_tokens=48, samples=3))
    assert cerm.judge.evaluation.max_tokens == 48 and cerm.judge.samples_per_response == 3
    with pytest.raises(ConfigError, match="--criteria-max-tokens does not apply to the critic_rm judge"):
        judge_settings(None, replace(flags, criteria_max_tokens=8))
    with pytest.raises(ConfigError, match="--repair/--no-repair does not apply to the critic_rm judge"):
        judge_settings(None, replace(flags, repair=False))
    with pytest.raises(ConfigError, match="--checkpoint does not apply to the cerm judge"):
        judge_settings(None, JudgeFlags(judge="cerm", checkpoint=tmp_path))
    with pytest.raises(ConfigError, match="unknown judge kind 'pairwise'"):
        judge_settings(None, JudgeFlags(judge="pairwise"))


def test_every_flag_a_judge_kind_maps_is_a_cli_flag():
    """The registry's flag names are JudgeFlags fields: a renamed flag fails here, not silently at run time."""
    declared = {field.name for field in fields(JudgeFlags)}
    for kind in JUDGE_KINDS.values():
        assert set(kind.flags) <= declared, kind.name


def test_failure_values_of_both_kinds():
    assert CermJudgeConfig().failed_score is None and CermJudgeConfig().fallback_score == 5.0
    minimum = CermJudgeConfig.model_validate({"failure": {"on_failure": "minimum"}})
    assert minimum.failed_score == 0.0 and "minimum (0)" in minimum.describe_failure_policy()
    critic = CriticJudgeConfig(checkpoint="c")
    assert critic.failed_score is None and critic.fallback_score == 0.0
    assert "excluded" in critic.describe_failure_policy()
    assert CriticJudgeConfig(checkpoint="c", failure_score=-3.0).failed_score == -3.0


def test_a_replica_answer_reads_back_as_the_same_kind():
    for judge in (CermJudgeConfig(), CriticJudgeConfig(checkpoint="/c", critiques_per_response=2)):
        assert judge_config_of(judge.model_dump(mode="json")) == judge


def test_cerm_config_shows_the_critic_defaults(tmp_path):
    result = CliRunner().invoke(app, ["config", "--judge", "critic_rm", "--checkpoint", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "kind: critic_rm" in result.stdout and f"checkpoint: {tmp_path}" in result.stdout
    assert "critiques_per_response: 1" in result.stdout and "excluded" in result.stdout
    refused = CliRunner().invoke(app, ["config", "--judge", "critic_rm"])
    assert refused.exit_code == 2 and "judge.checkpoint is required" in refused.output


def test_cerm_config_refuses_an_unknown_judge_kind_with_the_choices():
    refused = CliRunner().invoke(app, ["config", "--judge", "bogus"])
    message = " ".join(refused.output.replace("│", " ").split())  # typer draws the error in a box
    assert refused.exit_code == 2
    assert "Invalid value for '--judge'" in message and "'bogus' is not one of 'cerm', 'critic_rm'" in message
