"""Run a recipe script with its launcher intercepted: a shim on PATH records the argv instead of training."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

RECIPES = Path(__file__).resolve().parents[2] / "recipes"


def intercepted_argv(tmp_path: Path, script: str, env: dict[str, str], launcher: str, *also: str) -> dict[str, list[list[str]]]:
    """Run ``recipes/<script>`` (cwd ``tmp_path``) with ``launcher`` and ``also`` replaced by recording shims.

    Returns each shimmed command's calls, in order, as argv lists. The shims sit before the
    venv's ``bin`` on PATH, so every other command the script runs (``cerm``, ``realpath``...) is real.
    """
    shims = tmp_path / "shims"
    shims.mkdir(exist_ok=True)
    for name in (launcher, *also):
        shim = shims / name
        record = f'{{ for a in "$@"; do printf "%s\\n" "$a"; done; echo "--end--"; }} >> {shims}/{name}.calls'
        shim.write_text(f"#!/bin/sh\n{record}\n")
        shim.chmod(shim.stat().st_mode | stat.S_IEXEC)
    path = f"{shims}:{Path(sys.executable).parent}:{os.environ['PATH']}"
    done = subprocess.run(
        ["bash", str(RECIPES / script)],
        env={**os.environ, **env, "PATH": path},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    calls: dict[str, list[list[str]]] = {}
    for name in (launcher, *also):
        record = shims / f"{name}.calls"
        lines = record.read_text().splitlines() if record.exists() else []
        calls[name] = []
        current: list[str] = []
        for line in lines:
            if line == "--end--":
                calls[name].append(current)
                current = []
            else:
                current.append(line)
    assert calls[launcher], f"{script} never ran {launcher}"
    return calls
