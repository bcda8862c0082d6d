"""`cerm critic train` end to end on a tiny run: records in, checkpoint and log out."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from cerm_reward.cli.app import app
from cerm_reward.jsonl import write_jsonl
from cerm_reward.judges.critic_rm.model import HEAD_DIR, HEAD_WEIGHTS
from cerm_reward.training.critic_rm.builder import RECORD_FORMAT
from cerm_reward.training.critic_rm.config import LmWeightSchedule
from cerm_reward.training.critic_rm.objective import lm_weight_at
from tests.critic_rm.helpers import llmbar_pairs


def write_training_records(path, pairs: int) -> None:
    """Real LLMBar pairs with fixed critiques, the first one kept by the filter."""
    records = [
        {
            "format": RECORD_FORMAT,
            "id": pair.id,
            "prompt": pair.query,
            "chosen": pair.chosen,
            "rejected": pair.rejected,
            "kept": index == 0,
            "chosen_critique": "It does what the request asks. \\boxed{8}",
            "rejected_critique": "It misses part of the request. \\boxed{3}",
            "provenance": {"template": "critic-v1"},
        }
        for index, pair in enumerate(llmbar_pairs(pairs))
    ]
    write_jsonl(records, path)


@pytest.mark.slow  # trains or runs forward passes of the 4-layer model on the CPU: 20 to 70 s on two cores
def test_train_command_writes_a_checkpoint_and_the_scheduled_log(small_base_model, tmp_path):
    write_training_records(tmp_path / "records.jsonl", 2)
    (tmp_path / "train.yaml").write_text(
        "lm_weight: {kind: linear, start: 1.0, floor: 0.2}\nmax_steps: 2\npairs_per_device: 1\n"
        "max_query_tokens: 32\nmax_response_tokens: 32\nmax_critique_tokens: 16\ntrainable_layers: 1\n"
    )
    output = tmp_path / "model"
    arguments = ["critic", "train", str(tmp_path / "records.jsonl"), "-o", str(output), "--base-model", str(small_base_model)]
    result = CliRunner().invoke(app, [*arguments, "-c", str(tmp_path / "train.yaml"), "--lm-weight-schedule", "cosine"])
    assert result.exit_code == 0, result.output
    assert (output / "config.json").is_file() and (output / HEAD_DIR / HEAD_WEIGHTS).is_file()
    logs = [json.loads(line) for line in (output / "train_log.jsonl").read_text().splitlines()]
    cosine = LmWeightSchedule(kind="cosine", start=1.0, floor=0.2)  # the flag overrides the file's kind only
    assert [entry["lm_weight"] for entry in logs] == pytest.approx([lm_weight_at(cosine, t) for t in (0.0, 0.5)])


@pytest.mark.slow  # two torchrun ranks train the 4-layer model over gloo: about 60 s on two cores
def test_train_runs_data_parallel_on_two_processes_under_torchrun(small_base_model, tmp_path):
    """The multi-process path the FSDP and ZeRO-3 recipes take, on CPU: torchrun starts 2 ranks that
    join over gloo; accelerate's FSDP and DeepSpeed plugins themselves need GPUs (docs/critic_rm.md)."""
    from cerm_reward.judges.critic_rm.head_scorer import HeadScorer

    write_training_records(tmp_path / "records.jsonl", 4)
    (tmp_path / "train.yaml").write_text(
        "tokens_per_device: 1\nmax_query_tokens: 32\nmax_response_tokens: 32\nmax_critique_tokens: 16\n"
        "trainable_layers: 1\ntrainer_args: {use_cpu: true}\n"  # a budget below any pair: one pair per packed batch
    )
    output = tmp_path / "model"
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "-m", "cerm_reward.cli", "critic"]
    command += ["train", str(tmp_path / "records.jsonl"), "-o", str(output), "--base-model", str(small_base_model)]
    done = subprocess.run([*command, "-c", str(tmp_path / "train.yaml")], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    logs = [json.loads(line) for line in (output / "train_log.jsonl").read_text().splitlines()]
    assert len(logs) == 2  # 4 pairs, 1 per rank per step, 2 ranks: one epoch is 2 steps (1 rank would take 4)
    assert done.stdout.count("cerm critic train") == 1  # rank 0 alone reports and writes the log
    head = HeadScorer.load(output, device="cpu")
    [score] = head.score([("Say hi.", "Hi!", "It greets. \\boxed{9}")])
    assert math.isfinite(score)
