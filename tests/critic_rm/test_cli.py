"""`cerm critic train` end to end on a tiny run: records in, checkpoint and log out."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from cerm_reward.cli import app
from cerm_reward.critic_rm.builder import RECORD_FORMAT, write_records
from cerm_reward.critic_rm.config import LmWeightSchedule
from cerm_reward.critic_rm.model import HEAD_DIR, HEAD_WEIGHTS
from cerm_reward.critic_rm.objective import lm_weight_at
from tests.critic_rm.helpers import llmbar_pairs


def test_train_command_writes_a_checkpoint_and_the_scheduled_log(small_base_model, tmp_path):
    records = [
        {
            "format": RECORD_FORMAT,
            "id": pair.id,
            "prompt": pair.prompt,
            "chosen": pair.chosen,
            "rejected": pair.rejected,
            "kept": index == 0,
            "chosen_critique": "It does what the request asks. \\boxed{8}",
            "rejected_critique": "It misses part of the request. \\boxed{3}",
            "provenance": {"template": "critic-v1"},
        }
        for index, pair in enumerate(llmbar_pairs(2))
    ]
    write_records(records, tmp_path / "records.jsonl")
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
