"""The verl integration's pure parts: cleaning rollouts, step metrics, settings, data preparation."""

import json
from pathlib import Path

import pandas as pd
import pytest

from cerm_reward.integrations.verl.data import DatasetFormatError, load_rows, verl_rows, write_parquet
from cerm_reward.integrations.verl.metrics import MetricsCollector, is_validation, pearson, step_metrics
from cerm_reward.integrations.verl.policy_output import clean_policy_output
from cerm_reward.integrations.verl.settings import PolicyOutputSettings, VerlJudgeSettings

LLMBAR = Path(__file__).resolve().parents[4] / "shared" / "data" / "llmbar" / "Natural.json"  # read in place, never copied


@pytest.mark.parametrize(
    ("text", "answer", "notes"),
    [
        ("<think>2+2 is 4</think>\n\nFour.", "Four.", ["think_stripped"]),
        ("reasoning only closed</think>The answer.", "The answer.", ["think_stripped"]),  # Qwen3: <think> in the prompt
        ("<think>a</think>x<think>b</think> final", "final", ["think_stripped"]),
        ("<think>cut off while thinking", "", ["think_unclosed"]),
        ("  Plain answer.  ", "Plain answer.", []),
        ("", "", []),
    ],
)
def test_policy_output_is_cleaned_to_the_answer(text, answer, notes):
    assert clean_policy_output(text, PolicyOutputSettings()) == (answer, notes)


def test_think_stripping_can_be_turned_off():
    assert clean_policy_output("<think>x</think>y", PolicyOutputSettings(strip_think=False)) == ("<think>x</think>y", [])


def record(group, reward, *, failure="", lookup="hit", chars=10, latency=1.0, validation=False):
    return {
        "group": group, "reward": reward, "failure": failure, "criteria_lookup": lookup,
        "answer_chars": chars, "latency_s": latency, "prompt_tokens": 100, "completion_tokens": 10,
        "validation": validation,
    }  # fmt: skip


def test_step_metrics_describe_groups_failures_and_length_bias():
    records = [
        record("a", 8.0, lookup="miss", chars=100, latency=1.0),
        record("a", 6.0, chars=50, latency=2.0),
        record("b", 5.0, lookup="miss", failure="no_score", chars=20, latency=3.0),
        record("b", 5.0, lookup="joined", chars=30, latency=10.0),
    ]
    metrics = step_metrics(records)
    assert metrics["cerm/samples"] == 4 and metrics["cerm/groups"] == 2
    assert metrics["cerm/criteria_cache_hit_rate"] == 0.5
    assert metrics["cerm/failure_rate"] == 0.25 and metrics["cerm/failure_rate/no_score"] == 0.25
    assert metrics["cerm/failure_rate/timeout"] == 0.0
    assert metrics["cerm/group_score_std"] == pytest.approx((1.0 + 0.0) / 2)
    assert metrics["cerm/zero_variance_group_frac"] == 0.5
    assert metrics["cerm/latency_p50_s"] == 2.5 and metrics["cerm/prompt_tokens"] == 400
    assert metrics["cerm/score_length_corr"] > 0.8  # longer answers scored higher here
    assert step_metrics([]) == {}
    critic_rm = step_metrics([record("c", 1.5, lookup="none"), record("c", -0.5, lookup="none")])
    assert "cerm/criteria_cache_hit_rate" not in critic_rm and critic_rm["cerm/score_mean"] == 0.5  # no criteria


def test_pearson_is_undefined_for_constant_inputs():
    import numpy as np

    assert pearson(np.array([1.0, 2.0]), np.array([3.0, 3.0])) is None
    assert pearson(np.array([1.0]), np.array([3.0])) is None


def test_collector_drains_each_record_once_and_caps_examples():
    collector = MetricsCollector(table_rows=1)
    for i in range(3):
        collector.record(record("g", float(i)), {"query": f"q{i}"})
    assert collector.pending() == 3
    metrics, examples = collector.drain()
    assert metrics["cerm/samples"] == 3 and examples == [{"query": "q0"}]
    assert collector.drain() == ({}, []) and collector.pending() == 0


def test_validation_samples_are_counted_apart_under_val_cerm():
    collector = MetricsCollector(table_rows=0)
    for reward in (8.0, 6.0):
        collector.record(record("train", reward))
    collector.record(record("held-out", 2.0, failure="no_score", validation=True))
    metrics, _ = collector.drain()
    assert metrics["cerm/samples"] == 2 and metrics["cerm/score_mean"] == 7.0 and metrics["cerm/failure_rate"] == 0.0
    assert metrics["val-cerm/samples"] == 1 and metrics["val-cerm/score_mean"] == 2.0
    assert metrics["val-cerm/failure_rate/no_score"] == 1.0
    collector.record(record("train", 1.0))
    assert not any(key.startswith("val-cerm/") for key in collector.drain()[0])  # a training-only step has none


@pytest.mark.parametrize(
    ("extra_info", "meta_info", "validation"),
    [
        ({"split": "test", "index": 0}, {}, True),  # cerm verl prepare-data / verl's example data
        ({"split": "validation"}, None, True),
        ({"split": "train"}, {}, False),
        ({"split": "train"}, {"validate": True}, True),  # verl's flag, where it reaches the worker
        (None, {}, False),  # no split: training, as verl's trainer treats an unlabelled sample
        ({"split": 3}, {}, False),
    ],
)
def test_a_sample_is_validation_by_verls_flag_or_its_split(extra_info, meta_info, validation):
    assert is_validation(extra_info, meta_info) is validation


def test_settings_overrides_keep_cerm_defaults_for_nulls(tmp_path):
    base = tmp_path / "judge.yaml"
    base.write_text("judge:\n  evaluation: {max_tokens: 512}\n")
    settings = VerlJudgeSettings.model_validate(
        {"config": str(base), "engine": {"model": "PKU-ONELab/CE-RM-4B", "kv_cache_gib": None},
         "judge": {"criteria": {"max_tokens": 256, "temperature": None}, "evaluation": {"max_tokens": None}}}
    )  # fmt: skip
    cerm = settings.cerm_config()
    assert cerm.engine.model == "PKU-ONELab/CE-RM-4B" and cerm.engine.kv_cache_gib is None
    assert cerm.judge.criteria.max_tokens == 256 and cerm.judge.evaluation.max_tokens == 512  # from the file
    routed = settings.cerm_config(reward_router_address="10.0.0.5:8000", router_model="PKU-ONELab/CE-RM-4B")
    assert (routed.engine.kind, routed.engine.base_url, routed.engine.model) == ("http", "10.0.0.5:8000", None)


def test_prepare_data_writes_verls_layout_from_real_prompts(tmp_path):
    rows = verl_rows(load_rows(str(LLMBAR)), data_source="llmbar", split="train", prompt_key="input", limit=5)
    path = tmp_path / "train.parquet"
    write_parquet(rows, path)
    frame = pd.read_parquet(path)
    assert list(frame.columns) == ["data_source", "prompt", "ability", "reward_model", "extra_info"] and len(frame) == 5
    first = json.loads(LLMBAR.read_text())[0]["input"]
    assert list(frame.iloc[0]["prompt"]) == [{"role": "user", "content": first}]
    assert list(frame.iloc[0]["extra_info"]["prompt"]) == list(frame.iloc[0]["prompt"])


def test_prepare_data_drops_a_trailing_assistant_turn_and_names_bad_rows(tmp_path):
    source = tmp_path / "chats.jsonl"
    chat = [{"role": "user", "content": "Hi?"}, {"role": "assistant", "content": "Hello."}]
    source.write_text(json.dumps({"messages": chat}) + "\n" + json.dumps({"messages": 3}) + "\n")
    with pytest.raises(DatasetFormatError, match="row 1: 'messages' must be"):
        verl_rows(load_rows(str(source)), data_source="x", split="train")
    [row] = verl_rows(load_rows(str(source)), data_source="x", split="train", limit=1, system_prompt="Be brief.")
    assert row["prompt"] == [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi?"}]
