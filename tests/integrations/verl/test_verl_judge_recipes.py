"""The judge-training recipes, run with their launchers intercepted, composed by verl's real Hydra configs.

verl's trainers need GPUs, so the launch itself cannot run here: this checks that each script's
command line composes with verl 0.9.1's own config (every override names a real key) and carries
the settings the recipe promises (the CE-RM paper's SFT and RL numbers, the two-stage rollout).
"""

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("verl")

from cerm_reward.integrations.verl.batches import compose_trainer_config  # noqa: E402

RECIPES = Path(__file__).resolve().parents[3] / "recipes" / "verl"


def launched_argv(tmp_path: Path, script: str, launcher: str, env: dict[str, str]) -> list[str]:
    """Run a recipe with ``launcher`` on PATH replaced by a shim that records its argv."""
    shims = tmp_path / "shims"
    shims.mkdir()
    record = tmp_path / "argv.txt"
    shim = shims / launcher
    shim.write_text(f'#!/bin/sh\nfor a in "$@"; do printf "%s\\n" "$a"; done > {record}\n')
    shim.chmod(shim.stat().st_mode | stat.S_IEXEC)
    path = f"{shims}:{Path(sys.executable).parent}:{os.environ['PATH']}"
    done = subprocess.run(
        ["bash", str(RECIPES / script)], env={**os.environ, **env, "PATH": path}, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    return record.read_text().splitlines()


def test_rl_recipe_composes_cerm_judge_trainer_with_the_paper_numbers(tmp_path):
    argv = launched_argv(tmp_path, "judge_grpo.sh", "python3", {"PYTHON": "python3", "SFT": "/ckpt/sft", "DATA": "/data"})
    assert argv[:4] == ["-m", "verl.trainer.main_ppo", "--config-name", "cerm_judge_trainer"]
    config = compose_trainer_config(*argv[4:], config_name="cerm_judge_trainer")
    actor = config.actor_rollout_ref.actor
    assert (actor.optim.lr, actor.kl_loss_coef, actor.ppo_mini_batch_size, config.data.train_batch_size) == (2e-6, 1e-3, 64, 256)
    assert config.actor_rollout_ref.rollout.n == 20 and config.algorithm.adv_estimator == "cerm_precomputed"
    assert config.actor_rollout_ref.model.path == "/ckpt/sft" and config.data.train_files == "/data/judge_train.parquet"
    assert "hf_model" in actor.checkpoint.save_contents  # the saved huggingface/ folder is what the judge serves


def test_sft_recipe_composes_verl_sft_trainer_with_the_paper_numbers(tmp_path):
    argv = launched_argv(tmp_path, "judge_sft.sh", "torchrun", {"DATA": "/data", "BASE": "/models/base"})
    module = argv.index("-m")
    assert argv[module + 1] == "verl.trainer.sft_trainer"
    config = compose_trainer_config(*argv[module + 2 :], config_name="sft_trainer_engine")
    assert (config.data.train_batch_size, config.optim.lr, config.trainer.total_epochs) == (64, 1e-5, 3)
    assert config.data.messages_key == "messages" and config.model.path == "/models/base"
    assert "hf_model" in config.checkpoint.save_contents
