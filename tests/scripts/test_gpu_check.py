"""scripts/gpu_check.sh, run here on its CPU path: the same recipe, launcher, save, reload and head
scoring it runs on a GPU, with float32 and one process (the GPU run itself needs a GPU machine)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow  # a training run through accelerate's launcher: about 30 s on 2 cores
def test_the_gpu_check_trains_through_the_fsdp_recipe_reloads_and_scores_on_its_cpu_path(tmp_path):
    shims = tmp_path / "bin"
    shims.mkdir()
    shim = shims / "python3"  # the GPU machine's python3 has torch; here the venv's interpreter does
    shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n')
    shim.chmod(0o755)
    env = {**os.environ, "PATH": f"{shims}:{os.environ['PATH']}", "TMPDIR": str(tmp_path)}
    done = subprocess.run(
        ["bash", str(REPO / "scripts" / "gpu_check.sh"), "--allow-cpu", "--layers", "2", "--pairs", "8", "--steps", "2",
         "--skip-vllm", "--workdir", str(tmp_path / "work")],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    lines = done.stdout.strip().splitlines()
    figures = json.loads(lines[-1])
    assert len(lines) == 1, "the check prints one JSON line"
    assert figures["ok"] and figures["steps"] == 2 and figures["processes"] == 1
    assert {"model.safetensors", "reward_head/head.safetensors", "train_log.jsonl"} <= set(figures["checkpoint_files"])
    assert len(figures["head_scores_on_device"]) == 2
    assert figures["vllm_judge"] == {"ran": False, "why": "--skip-vllm"}


def test_without_a_gpu_the_check_says_so_and_fails():
    done = subprocess.run([sys.executable, str(REPO / "scripts" / "gpu_check.py")], capture_output=True, text=True, timeout=120)
    refusal = {"ok": False, "error": "no GPU (pass --allow-cpu to run the CPU path)"}
    assert done.returncode == 1 and json.loads(done.stdout) == refusal
