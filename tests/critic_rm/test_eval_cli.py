"""`cerm eval --judge critic_rm`: Critic-RM in the evaluation harness from the command line, its
critiques from the real `vllm serve` of the embedded judge and its scores from a saved head."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.critic_rm.helpers import LLMBAR

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.server
def test_eval_runs_the_critic_rm_judge_from_a_checkpoint(tmp_path, vllm_server, checkpoint):
    run = tmp_path / "run"
    command = [sys.executable, "-m", "cerm_reward.cli", "eval", str(LLMBAR), "--format", "llmbar", "--limit", "2"]
    command += ["--judge", "critic_rm", "--checkpoint", str(checkpoint), "--engine", "http", "--base-url", vllm_server]
    command += ["--eval-max-tokens", "24", "--no-cache", "--no-plots", "-o", str(run)]
    done = subprocess.run(command, capture_output=True, text=True, cwd=REPO, timeout=600)
    assert done.returncode == 0, done.stderr
    report = json.loads((run / "report.json").read_text())
    assert report["meta"]["judge"].startswith(f"critic_rm:{checkpoint}") and report["benchmarks"][0]["n"] == 2
    rows = [json.loads(line) for line in (run / "results.jsonl").read_text().splitlines()]
    assert all(isinstance(s["score"], float) and s["failure"] is None for row in rows for s in row["scores"])
