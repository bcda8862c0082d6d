"""The OpenRLHF recipes up to their launch: `python` intercepted, the argv through OpenRLHF 0.11.2's own
argument handling, and the judge server's flags through `cerm serve`'s own parser.

The trainer needs GPUs, so the launch itself cannot run here. What runs is the whole main block
of ``openrlhf/cli/train_ppo_ray.py`` (the parser, ``hierarchize``, then the checks and adjustments
OpenRLHF makes after ``parse_args``) with ``train`` stubbed, without the module's GPU-bound imports.
OpenRLHF reports a setting it overrides or advises against by printing it; any such line, or a
``warnings.warn``, fails the test.
"""

from __future__ import annotations

import argparse
import ast
import datetime
import io
import os
import subprocess
import sys
import warnings
from collections.abc import Callable
from contextlib import redirect_stdout
from pathlib import Path
from types import SimpleNamespace
from unittest import mock

import pytest

from tests.recipes.launchers import RECIPES, intercepted_argv


@pytest.fixture(scope="module")
def openrlhf_main() -> Callable[[list[str]], SimpleNamespace]:
    """``train_ppo_ray``'s main block as a function of argv, returning the args it would train with."""
    source = Path(pytest.importorskip("openrlhf.cli").__file__).with_name("train_ppo_ray.py")
    main = next(
        node for node in ast.parse(source.read_text()).body if isinstance(node, ast.If) and "__main__" in ast.unparse(node.test)
    )
    code = compile(ast.Module(main.body, type_ignores=[]), str(source), "exec")

    def run(argv: list[str]) -> SimpleNamespace:
        trained: list[SimpleNamespace] = []
        namespace = {
            "argparse": argparse,
            "os": os,
            "datetime": datetime.datetime,
            "train": trained.append,
        }  # the module's own imports
        printed = io.StringIO()
        with (
            mock.patch.object(sys, "argv", ["train_ppo_ray.py", *argv]),
            redirect_stdout(printed),
            warnings.catch_warnings(record=True) as caught,
        ):
            warnings.simplefilter("always")
            exec(code, namespace)
        assert printed.getvalue() == "", f"OpenRLHF adjusted or advised against a setting:\n{printed.getvalue()}"
        assert [str(w.message) for w in caught] == []
        [args] = trained
        return args

    return run


def launched(tmp_path: Path, script: str, env: dict[str, str]) -> list[str]:
    [argv] = intercepted_argv(tmp_path, f"openrlhf/{script}", env, "python")["python"]
    assert argv[:2] == ["-m", "openrlhf.cli.train_ppo_ray"]
    return argv[2:]


ENV = {"JUDGE_HOST": "judge-node", "CERM_SERVE_TOKEN": "t0k", "PROMPTS": "/data/prompts.jsonl"}


def assert_kl_as_a_loss(args: SimpleNamespace) -> None:
    """The paper's and the verl recipes' KL: a loss with coefficient 1e-3, k3 as OpenRLHF advises for a loss."""
    assert args.algo.kl.use_loss and (args.algo.kl.init_coef, args.algo.kl.estimator) == (1e-3, "k3")


def test_openrlhf_handling_reports_a_k3_estimator_without_a_kl_loss(tmp_path, openrlhf_main):
    """The check can fail: the remote recipe as shipped before the fix (k3, no KL loss) prints OpenRLHF's advice."""
    argv = [a for a in launched(tmp_path, "train_grpo_cerm_remote.sh", ENV) if a != "--algo.kl.use_loss"]
    with pytest.raises(AssertionError, match="Recommend setting k3 to 'k1' when not using KL as a loss"):
        openrlhf_main(argv)


def test_remote_endpoint_recipe_passes_openrlhf_argument_handling(tmp_path, openrlhf_main):
    args = openrlhf_main(launched(tmp_path, "train_grpo_cerm_remote.sh", ENV))
    assert args.reward.remote_url == ["http://judge-node:8000/get_reward?token=t0k"]
    assert args.algo.advantage.estimator == "group_norm" and args.rollout.n_samples_per_prompt == 8
    assert args.actor.model_name_or_path == "Qwen/Qwen3-8B" and args.vllm.enable_sleep  # kept: colocate_all is on
    assert_kl_as_a_loss(args)


def test_reward_func_recipe_writes_the_file_and_points_openrlhf_at_it(tmp_path, openrlhf_main):
    args = openrlhf_main(launched(tmp_path, "train_grpo_cerm_reward_func.sh", ENV))
    [reward_file] = map(Path, args.reward.remote_url)
    assert reward_file.is_absolute() and reward_file.suffix == ".py" and reward_file.exists()
    assert 'DEFAULT_URL = "http://judge-node:8000"' in reward_file.read_text()
    assert "t0k" not in reward_file.read_text()  # the token stays in the environment
    assert args.algo.advantage.estimator == "group_norm" and args.rollout.n_samples_per_prompt == 8
    assert_kl_as_a_loss(args)


def test_recipes_refuse_to_run_without_their_settings():
    done = subprocess.run(
        ["bash", str(RECIPES / "openrlhf" / "train_grpo_cerm_remote.sh")],
        env={"PATH": os.environ["PATH"]},
        capture_output=True,
        text=True,
    )
    assert done.returncode != 0 and "set JUDGE_HOST" in done.stderr


def test_judge_training_recipe_passes_openrlhf_argument_handling_with_the_agent_file(tmp_path, openrlhf_main):
    from cerm_reward.integrations.openrlhf import judge_agent

    args = openrlhf_main(launched(tmp_path, "train_judge_agent.sh", {"SFT": "/ckpt/sft", "PAIRS": "/data/pairs.jsonl"}))
    assert Path(args.train.agent_func_path) == Path(judge_agent.__file__) and args.reward.remote_url == ["agent"]
    assert args.algo.advantage.estimator == "group_norm" and args.rollout.n_samples_per_prompt == 4
    assert args.actor.adam.lr == 2e-6 and args.data.prompt_dataset == "/data/pairs.jsonl"
    assert not args.data.apply_chat_template  # the agent renders the judge's prompts itself
    assert_kl_as_a_loss(args)


def test_judge_server_recipe_passes_cerm_serve_flags_and_its_config(tmp_path, monkeypatch):
    """`cerm` intercepted; its argv parsed by `cerm serve`'s own (click) parser, the config file by CermConfig."""
    import typer

    from cerm_reward.cli.app import app
    from cerm_reward.config import CermConfig

    env = {"CERM_SERVE_TOKEN": "t0k", "CERM_PORT": "9001"}
    [argv] = intercepted_argv(tmp_path, "openrlhf/judge_server.sh", env, "cerm")["cerm"]
    assert argv[0] == "serve"
    serve = typer.main.get_command(app).commands["serve"]
    monkeypatch.setenv("CERM_SERVE_TOKEN", "t0k")  # what the script's environment hands `cerm serve`
    context = serve.make_context("cerm serve", argv[1:])  # an unknown flag or a bad value raises here
    parameters = context.params
    assert (parameters["host"], parameters["port"], parameters["token"]) == ("0.0.0.0", 9001, "t0k")
    assert parameters["deadline_s"] == 170.0 and parameters["on_failure"].value == "neutral"
    assert Path(parameters["config"]).resolve() == (RECIPES / "judge" / "ce-rm-4b.yaml").resolve()
    assert CermConfig.from_file(parameters["config"]).engine.model == "PKU-ONELab/CE-RM-4B"
    done = subprocess.run(
        ["bash", str(RECIPES / "openrlhf" / "judge_server.sh")], env={"PATH": os.environ["PATH"]}, capture_output=True, text=True
    )
    assert done.returncode != 0 and "set CERM_SERVE_TOKEN" in done.stderr  # it listens beyond loopback: no token, no start
