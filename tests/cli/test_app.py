"""The `cerm` root app: light to import, every group registered, one error model."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from cerm_reward.cli.app import app
from cerm_reward.cli.errors import ReportsUserErrors
from cerm_reward.errors import InputError

REPO = Path(__file__).resolve().parents[2]
SUB_APPS = {
    "needle": ["build", "eval"],
    "critic": ["build-data", "train"],
    "train": ["prepare-data", "distill-sft", "openrlhf-agent"],
    "openrlhf": ["reward-func"],
    "verl": ["prepare-data"],
}


def cerm(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cerm_reward.cli", *args], capture_output=True, text=True, cwd=REPO, timeout=120)


def test_importing_the_app_loads_no_framework():
    """`cerm --help` and usage errors answer at once: torch, transformers, vLLM and Ray load in command bodies."""
    code = (
        "import sys, cerm_reward.cli.app; "
        "print(sorted(m for m in ('torch', 'transformers', 'vllm', 'ray') if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_help_lists_every_command_and_group():
    done = cerm("--help")
    assert done.returncode == 0, done.stderr
    for name in ("score", "serve", "eval", "bench", "prompts", "config", "embedded", *SUB_APPS):
        assert f" {name} " in done.stdout


@pytest.mark.parametrize("group", sorted(SUB_APPS))
def test_a_group_alone_shows_its_help(group):
    result = CliRunner().invoke(app, [group])
    assert result.exit_code in (0, 2) and isinstance(result.exception, SystemExit | type(None))
    assert "Usage:" in result.output and all(command in result.output for command in SUB_APPS[group])


def test_a_user_error_is_one_line_on_stderr_and_exit_code_2():
    done = cerm("openrlhf", "reward-func", "--url", "http://judge:8000")
    assert done.returncode == 2
    assert done.stderr == "error: --url needs --output (the installed file is not edited)\n" and done.stdout == ""


def _test_only_app(error: Exception) -> typer.Typer:
    """A test-only app on the real root group, with a command that raises ``error``."""
    test_app = typer.Typer(cls=ReportsUserErrors)

    @test_app.command()
    def fail() -> None:
        raise error

    @test_app.command()
    def succeed() -> None:
        print("done")

    return test_app


def test_on_a_test_only_command_a_cerm_error_exits_2_and_anything_else_keeps_its_traceback():
    user = CliRunner().invoke(_test_only_app(InputError("rows.jsonl:3: missing field 'query'")), ["fail"])
    assert user.exit_code == 2 and user.output == "error: rows.jsonl:3: missing field 'query'\n"
    bug = CliRunner().invoke(_test_only_app(KeyError("oops")), ["fail"])
    assert bug.exit_code == 1 and isinstance(bug.exception, KeyError)  # not reported as the user's mistake
    bad_value = CliRunner().invoke(_test_only_app(ValueError("broken invariant")), ["fail"])
    assert bad_value.exit_code == 1 and isinstance(bad_value.exception, ValueError)
    fine = CliRunner().invoke(_test_only_app(InputError("unused")), ["succeed"])
    assert fine.exit_code == 0 and fine.output == "done\n"
