"""The install checks' slow part, started when collection ends and run beside the rest of the suite.

Resolving every documented install line and installing the core into a clean environment takes
about 150 CPU-seconds, spent resolving pins and unpacking wheels. Started when collection finishes
(``tests/conftest.py``) at the lowest priority, it fills the cores the engine tests leave idle
instead of adding to the run, and ``tests/install`` only collects the answers. Everything here
runs in worker threads, so a failure is kept in its future and raised in the test that reads it.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[2]
INSTALL_DOC = REPO / "docs" / "install.md"


def documented_blocks() -> dict[str, list[str]]:
    """install-check name -> its command lines (comments and blank lines dropped)."""
    block = re.compile(r"<!-- install-check: (?P<name>[\w-]+) -->\n```bash\n(?P<body>.*?)```", re.S)
    blocks = {}
    for match in block.finditer(INSTALL_DOC.read_text(encoding="utf-8")):
        lines = [line.split("#", 1)[0].strip() for line in match["body"].splitlines()]
        blocks[match["name"]] = [line for line in lines if line]
    return blocks


BLOCKS = documented_blocks()


def in_background(python: Path, *args: str, cwd: Path = REPO, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """``python *args`` at the lowest priority (``nice -n 19``; pip's own build processes inherit it).

    The checks need about 150 CPU-seconds and their answers are read minutes later, so they take the
    cores only when the tests leave them idle (a fifth of the run) instead of slowing the tests of
    the first minutes."""
    return subprocess.run(
        ["nice", "-n", "19", str(python), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
    )


def pip(python: Path, *args: str, cwd: Path = REPO, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return in_background(python, "-m", "pip", *args, cwd=cwd, env=env)


def index_unreachable() -> str | None:
    """Why the package index cannot be reached, or None when it can."""
    try:
        httpx.get("https://pypi.org/simple/pip/", timeout=10).raise_for_status()
    except httpx.HTTPError as error:
        return str(error)
    return None


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


def clean_environment(folder: Path) -> Path:
    """A fresh virtual environment's interpreter, with only pip in it, upgraded first as docs/install.md
    says: the pip that ``venv`` bundles (23.2 with Python 3.11.7) resolved ``.[gpu,verl]`` in 67 s
    of wall time and 64 CPU-seconds here, pip 26.3 in 20 s and 18."""
    done = in_background(Path(sys.executable), "-m", "venv", str(folder))
    assert done.returncode == 0, done.stderr[-3000:]
    python = folder / "bin" / "python"
    done = pip(python, "install", "--quiet", "--upgrade", "pip")
    assert done.returncode == 0, done.stderr[-3000:]
    return python


def install_core(python: Path) -> Path:
    done = pip(python, "install", "--quiet", ".")
    assert done.returncode == 0, done.stderr[-3000:]
    return python


@dataclass
class InstallChecks:
    """The futures the install tests read: reachability, one resolution per block, the core install."""

    unreachable: Future
    resolutions: dict[str, Future]
    core: Future
    folder: Path
    pool: ThreadPoolExecutor

    @classmethod
    def start(cls) -> InstallChecks:
        """Resolutions share one clean environment (flash-attn's line, which builds against torch, uses
        this interpreter); the core install gets an environment of its own, so it need not wait for them."""
        folder = Path(tempfile.mkdtemp(prefix="cerm-install-checks-"))
        pool = ThreadPoolExecutor(max_workers=len(BLOCKS) + 3, thread_name_prefix="install-check")
        unreachable = pool.submit(index_unreachable)

        def when_reachable(task, *args):
            def run():
                if unreachable.result() is not None:
                    return None  # the tests skip, saying why
                return task(*args)

            return pool.submit(run)

        shared = when_reachable(clean_environment, folder / "resolve")

        def block(name: str) -> Future:
            python = Path(sys.executable)
            workdir = folder / f"block-{name}"
            workdir.mkdir()
            if name == "flash-attn":
                return when_reachable(run_block, name, python, workdir)
            return pool.submit(lambda: None if shared.result() is None else run_block(name, shared.result(), workdir))

        resolutions = {name: block(name) for name in BLOCKS}
        core = when_reachable(lambda: install_core(clean_environment(folder / "core")))
        return cls(unreachable, resolutions, core, folder, pool)

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)
        shutil.rmtree(self.folder, ignore_errors=True)


_checks: list[InstallChecks] = []


def started() -> InstallChecks:
    """The session's checks, started now if collection did not start them."""
    if not _checks:
        _checks.append(InstallChecks.start())
    return _checks[0]


def stop() -> None:
    while _checks:
        _checks.pop().close()
