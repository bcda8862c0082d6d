"""The OpenRLHF recipes, run with `python` intercepted, their argv parsed by OpenRLHF 0.11.2's own parser.

The trainer needs GPUs, so the launch itself cannot run here; this checks that the scripts
produce a command line OpenRLHF accepts, with the intended reward path and GRPO settings.
The parser is OpenRLHF's code: the statements of ``train_ppo_ray.py``'s main block up to
``parse_args``, executed without the module's GPU-bound imports.
"""

import argparse
import ast
import datetime
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
RECIPES = REPO / "recipes" / "openrlhf"


@pytest.fixture(scope="module")
def openrlhf_parser() -> argparse.ArgumentParser:
    spec = pytest.importorskip("openrlhf.cli").__file__
    tree = ast.parse(Path(spec).with_name("train_ppo_ray.py").read_text())
    main = next(node for node in tree.body if isinstance(node, ast.If) and "__main__" in ast.unparse(node.test))
    statements = []
    for statement in main.body:
        if "parse_args" in ast.unparse(statement):
            break
        statements.append(statement)
    namespace: dict = {"argparse": argparse, "os": os, "datetime": datetime.datetime}  # the module's own imports
    exec(compile(ast.Module(statements, type_ignores=[]), "openrlhf/cli/train_ppo_ray.py", "exec"), namespace)
    return namespace["parser"]


def captured_launch(tmp_path: Path, script: str, env: dict[str, str]) -> list[str]:
    """Run a recipe with a `python` on PATH that records its argv instead of training."""
    shims = tmp_path / "shims"
    shims.mkdir()
    record = tmp_path / "argv.txt"
    shim = shims / "python"
    shim.write_text(f'#!/bin/sh\nfor a in "$@"; do printf "%s\\n" "$a"; done > {record}\n')
    shim.chmod(shim.stat().st_mode | stat.S_IEXEC)
    path = f"{shims}:{Path(sys.executable).parent}:{os.environ['PATH']}"
    done = subprocess.run(
        ["bash", str(RECIPES / script)], env={**os.environ, **env, "PATH": path}, cwd=tmp_path, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    argv = record.read_text().splitlines()
    assert argv[:2] == ["-m", "openrlhf.cli.train_ppo_ray"]
    return argv[2:]


ENV = {"JUDGE_HOST": "judge-node", "CERM_SERVE_TOKEN": "t0k", "PROMPTS": "/data/prompts.jsonl"}


def test_remote_endpoint_recipe_is_accepted_by_openrlhf(tmp_path, openrlhf_parser):
    args = vars(openrlhf_parser.parse_args(captured_launch(tmp_path, "train_grpo_cerm_remote.sh", ENV)))
    assert args["reward.remote_url"] == "http://judge-node:8000/get_reward?token=t0k"
    assert args["algo.advantage.estimator"] == "group_norm"
    assert args["rollout.n_samples_per_prompt"] == 8
    assert args["actor.model_name_or_path"] == "Qwen/Qwen3-8B"
    assert args["algo.kl.init_coef"] == 1e-3


def test_reward_func_recipe_writes_the_file_and_points_openrlhf_at_it(tmp_path, openrlhf_parser):
    args = vars(openrlhf_parser.parse_args(captured_launch(tmp_path, "train_grpo_cerm_reward_func.sh", ENV)))
    reward_file = Path(args["reward.remote_url"])
    assert reward_file.is_absolute() and reward_file.suffix == ".py" and reward_file.exists()
    assert 'DEFAULT_URL = "http://judge-node:8000"' in reward_file.read_text()
    assert "t0k" not in reward_file.read_text()  # the token stays in the environment
    assert args["algo.advantage.estimator"] == "group_norm" and args["rollout.n_samples_per_prompt"] == 8


def test_recipes_refuse_to_run_without_their_settings(tmp_path):
    done = subprocess.run(
        ["bash", str(RECIPES / "train_grpo_cerm_remote.sh")], env={"PATH": os.environ["PATH"]}, capture_output=True, text=True
    )
    assert done.returncode != 0 and "set JUDGE_HOST" in done.stderr


def test_judge_training_recipe_points_openrlhf_at_the_agent_file(tmp_path, openrlhf_parser):
    from cerm_reward.integrations.openrlhf import judge_agent

    env = {"SFT": "/ckpt/sft", "PAIRS": "/data/pairs.jsonl"}
    args = vars(openrlhf_parser.parse_args(captured_launch(tmp_path, "train_judge_agent.sh", env)))
    assert Path(args["train.agent_func_path"]) == Path(judge_agent.__file__)
    assert args["algo.advantage.estimator"] == "group_norm" and args["rollout.n_samples_per_prompt"] == 4
    assert (args["actor.adam.lr"], args["algo.kl.init_coef"]) == (2e-6, 1e-3)
    assert args["data.prompt_dataset"] == "/data/pairs.jsonl" and not args["data.apply_chat_template"]
