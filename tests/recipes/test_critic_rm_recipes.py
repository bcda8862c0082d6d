"""The Critic-RM recipes up to their launch, and `train.yaml` through its first optimizer step.

`train.yaml` goes through the real ``TrainConfig`` and ``build_trainer`` and trains one optimizer
step on the embedded model's first layers, with the recipe's values except three: ``bf16`` and
pinned memory need a GPU and are turned off (``dataloader_pin_memory`` warns on a CPU);
``report_to: [wandb]`` stays but runs with ``WANDB_MODE=disabled`` (no account, no network); and
the step takes one batch of ``pairs_per_device`` pairs instead of ``gradient_accumulation_steps``
of them (the same code path, a quarter of the CPU time).
The accelerate configs go through accelerate's own loader and launch-argument handling;
``train.sh`` runs with ``cerm`` and ``accelerate`` intercepted and its argv is parsed by
accelerate's launch parser and by the `cerm critic` commands.
"""

from __future__ import annotations

import logging
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import typer

from cerm_reward.training.critic_rm.builder import read_build_records
from cerm_reward.training.critic_rm.config import TrainConfig
from cerm_reward.training.critic_rm.trainer import build_trainer
from tests.critic_rm.test_cli import write_training_records
from tests.recipes.launchers import RECIPES, intercepted_argv

CRITIC_RM = RECIPES / "critic_rm"
LAUNCH_CONFIGS = ("accelerate_fsdp.yaml", "accelerate_deepspeed_zero3.yaml")


@pytest.mark.slow  # trains or runs forward passes of the 4-layer model on the CPU: 20 to 70 s on two cores
def test_train_yaml_builds_the_trainer_and_takes_one_optimizer_step(small_base_model, tmp_path, monkeypatch, caplog):
    from transformers.utils import logging as transformers_logging

    recipe = TrainConfig.from_file(CRITIC_RM / "train.yaml")
    assert recipe.trainer_args["bf16"] is True  # on a GPU; turned off below
    cpu = {
        "max_steps": 1,
        "gradient_accumulation_steps": 1,
        "trainer_args": {**recipe.trainer_args, "bf16": False, "dataloader_pin_memory": False},
    }
    config = recipe.model_copy(update=cpu)
    monkeypatch.setenv("WANDB_MODE", "disabled")
    write_training_records(tmp_path / "records.jsonl", config.pairs_per_device)  # one optimizer step on one process
    transformers_logging.enable_propagation()
    try:
        with warnings.catch_warnings(record=True) as caught, caplog.at_level(logging.WARNING):
            warnings.simplefilter("always")
            trainer = build_trainer(read_build_records(tmp_path / "records.jsonl"), small_base_model, tmp_path / "run", config)
            trainer.train()
    finally:
        transformers_logging.disable_propagation()
    assert trainer.args.report_to == ["wandb"]  # the recipe's tracker, not the trainer's default of none
    head = trainer.model.reward_head.weight
    assert trainer.state.global_step == 1 and trainer.optimizer.state[head]["step"] == 1  # lr is 0 in warmup: count, not change
    assert [str(w.message) for w in caught] == []
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []


def test_the_trainer_reports_to_nothing_unless_a_recipe_names_a_tracker(small_base_model, tmp_path):
    write_training_records(tmp_path / "records.jsonl", 1)
    records = read_build_records(tmp_path / "records.jsonl")
    config = TrainConfig(pairs_per_device=1, max_query_tokens=32, max_response_tokens=32, max_critique_tokens=16)
    assert build_trainer(records, small_base_model, tmp_path / "run", config).args.report_to == []


@pytest.mark.parametrize("name", LAUNCH_CONFIGS)
def test_accelerate_configs_load_and_every_key_is_one_accelerate_reads(name):
    """accelerate's loader refuses unknown top-level keys; nested ones (``fsdp_config``, ``deepspeed_config``)
    are copied onto the launch arguments by ``_validate_launch_command`` without a check, so each must
    name a launch argument (accelerate/commands/launch.py), or it is silently dropped."""
    from accelerate.commands.config.config_args import load_config_from_file
    from accelerate.commands.launch import _validate_launch_command, launch_command_parser

    path = CRITIC_RM / name
    loaded = load_config_from_file(str(path))
    launch = launch_command_parser().parse_args(["--config_file", str(path), "-m", "cerm_reward.cli", "critic", "train"])
    known = set(vars(launch))
    for section in ("fsdp_config", "deepspeed_config"):
        for key in getattr(loaded, section):
            argument = key if section != "fsdp_config" or key.startswith("fsdp") else f"fsdp_{key}"
            assert argument in known, f"{name}: {section}.{key} is not an accelerate launch argument"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        _validate_launch_command(launch)
    assert [str(w.message) for w in caught] == []
    recipe = TrainConfig.from_file(CRITIC_RM / "train.yaml")
    assert loaded.mixed_precision == "bf16" and recipe.trainer_args["bf16"]  # the launcher and the Trainer agree
    if loaded.deepspeed_config:
        assert loaded.deepspeed_config["gradient_accumulation_steps"] == recipe.gradient_accumulation_steps


@pytest.mark.parametrize(("backend", "config_file"), [("fsdp", LAUNCH_CONFIGS[0]), ("deepspeed", LAUNCH_CONFIGS[1])])
def test_train_sh_launches_cerm_critic_with_flags_the_commands_accept(backend, config_file, tmp_path):
    from accelerate.commands.launch import launch_command_parser

    from cerm_reward.cli.app import app

    data, out = tmp_path / "prefs.jsonl", tmp_path / "run"
    data.write_text("")
    out.mkdir()
    (out / "critiques.jsonl").write_text("")  # what the intercepted build-data stage would write
    env = {"BASE": "meta-llama/Llama-3.1-8B-Instruct", "DATA": str(data), "OUT": str(out), "GPUS": "4", "BACKEND": backend}
    calls = intercepted_argv(tmp_path, "critic_rm/train.sh", env, "accelerate", "cerm")
    [[critic, *build_data]] = calls["cerm"]
    [[subcommand, *launch_argv]] = calls["accelerate"]
    launch = launch_command_parser().parse_args(launch_argv)
    assert subcommand == "launch"
    assert Path(launch.config_file).resolve() == (CRITIC_RM / config_file).resolve() and launch.num_processes == 4
    assert launch.module and launch.training_script == "cerm_reward.cli" and launch.training_script_args[0] == critic
    commands = typer.main.get_command(app).commands[critic].commands
    parsed = {}
    for name, *argv in (build_data, launch.training_script_args[1:]):
        parsed[name] = commands[name].make_context(f"cerm critic {name}", argv).params  # an unknown flag raises
    assert parsed["build-data"]["critiques"] == 4 and parsed["build-data"]["model"] == env["BASE"]
    train = parsed["train"]
    assert Path(train["config"]).resolve() == (CRITIC_RM / "train.yaml").resolve()
    assert train["base_model"] == env["BASE"] and train["output"] == out / "model"
    help_text = subprocess.run(
        [sys.executable, "-m", launch.training_script, critic, "train", "--help"], capture_output=True, text=True, timeout=120
    )
    assert help_text.returncode == 0 and "--base-model" in help_text.stdout  # the module accelerate runs is the CLI
