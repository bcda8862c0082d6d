"""Judge-training data: real LLMBar / RM-Bench pairs through the whole curation path into verl and OpenRLHF rows.

LLMBar (Zeng et al., ICLR 2024, MIT) and RM-Bench (Liu et al., ICLR 2025, ODC-BY) are read in
place from ../shared/data. Lengths are measured with the embedded judge's real tokenizer and
chat template; the parquet is loaded back through verl's own ``RLHFDataset``.
"""

import asyncio
import json
from pathlib import Path

import pytest

from cerm_reward.config import CermJudgeConfig, SamplingConfig
from cerm_reward.data.items import EvalItem, content_id
from cerm_reward.data.pairs import PreferencePair, pairs_from_items, read_pairs
from cerm_reward.engines.embedded import embedded_checkpoint
from cerm_reward.jsonl import write_jsonl
from cerm_reward.judges.templates import load_template
from cerm_reward.training.cerm.curation import CurationReport, DifficultyTally, deduplicate, drop_degenerate
from cerm_reward.training.cerm.lengths import stage2_prompt_bound
from cerm_reward.training.cerm.outputs import (
    TWO_STAGE_AGENT_NAME,
    openrlhf_judge_lines,
    verl_judge_rows,
    write_verl_parquet,
)
from cerm_reward.training.cerm.prepare import CurationOptions, curate

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
needs_data = pytest.mark.skipif(not DATA.is_dir(), reason="../shared/data is not present")


@pytest.fixture(scope="module")
def tokenizer():
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(embedded_checkpoint()))


def pair(id: str, query: str, chosen: str, rejected: str) -> PreferencePair:
    return PreferencePair(id, query, chosen, rejected, "test", "test")


def test_degenerate_pairs_and_whitespace_duplicates_are_dropped_and_counted():
    report = CurationReport(read=5)
    pairs = [
        pair("a", "Q1", "good", "bad"),
        pair("b", "Q1 ", "good\n", "  bad"),  # the same pair up to whitespace
        pair("c", "Q1", "same", "same "),  # no preference
        pair("d", "Q2", "", "bad"),  # empty response
        pair("e", "Q2", "good", "bad"),
    ]
    kept = deduplicate(drop_degenerate(pairs, report), report)
    assert [p.id for p in kept] == ["a", "e"]
    assert (report.degenerate, report.duplicates) == (2, 1)


def test_a_pair_keeps_its_sources_id_or_gets_one_from_its_content_whatever_the_layout(tmp_path):
    import pandas as pd

    single = EvalItem("llmbar-7", "llmbar", "Natural", "Q?", ["good", "bad"], [0], [1])
    several = EvalItem("rm-3", "rm-bench", "chat", "Q?", ["good", "fine", "bad"], [0, 1], [2])
    (kept_id,) = pairs_from_items([single])
    assert kept_id.id == "llmbar-7"
    hashed = list(pairs_from_items([several]))
    assert [p.id for p in hashed] == [content_id("Q?", "good", "bad"), content_id("Q?", "fine", "bad")]
    assert [p.id for p in pairs_from_items([several], max_pairs_per_item=1)] == [hashed[0].id]  # a cap renames nothing
    path = tmp_path / "prefs.parquet"
    pd.DataFrame([{"prompt": "Q?", "chosen": "good", "rejected": "bad"}]).to_parquet(path)
    assert read_pairs(str(path), "table")[0].id == hashed[0].id  # the same pair from a table: the same id


def test_table_rows_with_chat_responses_become_pairs(tmp_path):
    import pandas as pd

    path = tmp_path / "prefs.parquet"
    pd.DataFrame(
        [
            {
                "chosen": [{"role": "user", "content": "Capital of France?"}, {"role": "assistant", "content": "Paris."}],
                "rejected": [{"role": "user", "content": "Capital of France?"}, {"role": "assistant", "content": "Lyon."}],
            }
        ]
    ).to_parquet(path)
    (only,) = read_pairs(str(path), "table")
    assert (only.query, only.chosen, only.rejected, only.source) == ("Capital of France?", "Paris.", "Lyon.", "prefs")


@needs_data
def test_real_pairs_go_through_curation_into_verl_dataset_and_openrlhf_lines(tmp_path, tokenizer):
    from omegaconf import OmegaConf
    from verl.utils.dataset.rl_dataset import RLHFDataset

    llmbar = read_pairs(DATA / "llmbar" / "Natural.json", "llmbar")
    rm_bench = read_pairs(DATA / "rm-bench" / "chat_filtered.json", "rm-bench", max_pairs_per_item=3)
    assert len(llmbar) == 100 and len(rm_bench) == 129 * 3
    pairs = llmbar + rm_bench + llmbar[:5]  # five repeated pairs
    options = CurationOptions(max_prompt_length=1200, criteria_max_tokens=256)
    kept, report = asyncio.run(curate(pairs, options, tokenizer=tokenizer))

    assert report.read == len(pairs) and report.duplicates >= 5
    assert report.too_long > 0 and report.kept == len(kept) > 50  # long RM-Bench chats are cut, most pairs stay
    assert report.read == report.degenerate + report.duplicates + report.too_long + report.kept
    template = load_template("cerm-v1")
    for p in kept:
        for response in (p.chosen, p.rejected):
            assert stage2_prompt_bound(tokenizer, template, p.query, response, 256) <= 1200

    parquet = tmp_path / "judge.parquet"
    write_verl_parquet(verl_judge_rows(kept), parquet)
    config = OmegaConf.create({"max_prompt_length": 1200, "prompt_key": "prompt", "filter_overlong_prompts": True})
    dataset = RLHFDataset(data_files=[str(parquet)], tokenizer=tokenizer, config=config)
    assert len(dataset) == len(kept)
    row = dataset[0]
    assert row["agent_name"] == TWO_STAGE_AGENT_NAME
    assert row["raw_prompt"] == [{"role": "user", "content": kept[0].query}]
    assert {k: row["extra_info"][k] for k in ("pair_id", "query", "chosen", "rejected")} == {
        "pair_id": kept[0].id,
        "query": kept[0].query,
        "chosen": kept[0].chosen,
        "rejected": kept[0].rejected,
    }

    jsonl = tmp_path / "judge.jsonl"
    write_jsonl(openrlhf_judge_lines(kept), jsonl)
    first = json.loads(jsonl.read_text().splitlines()[0])
    assert first["prompt"] == kept[0].query and json.loads(first["label"])["chosen"] == kept[0].chosen


@needs_data
@pytest.mark.engine
async def test_difficulty_filter_scores_real_pairs_with_the_embedded_judge(embedded_engine, tokenizer):
    natural = read_pairs(DATA / "llmbar" / "Natural.json", "llmbar")
    pairs = sorted(natural, key=lambda p: len(p.query) + len(p.chosen) + len(p.rejected))[:2]  # the two shortest
    judge = CermJudgeConfig(
        criteria=SamplingConfig(max_tokens=24, temperature=0.8),
        evaluation=SamplingConfig(max_tokens=16, temperature=0.8),
        failure={"max_resamples": 0, "repair": True},
        call_timeout_s=120,
    )
    counted = []
    options = CurationOptions(max_prompt_length=4096, criteria_max_tokens=24, difficulty_rounds=2)
    kept, report = await curate(
        pairs, options, tokenizer=tokenizer, engine=embedded_engine, judge_config=judge, on_pair_judged=lambda: counted.append(1)
    )
    assert len(counted) == 2 and sum(report.difficulty.values()) == 2
    assert report.kept == len(kept) == report.difficulty["kept"] + report.difficulty["unjudged"]
    assert set(report.difficulty) <= {"kept", "easy", "hard", "unjudged"}


def test_difficulty_verdicts():
    assert DifficultyTally(right=2, wrong=1, unscored=0).verdict == "kept"
    assert DifficultyTally(right=3, wrong=0, unscored=1).verdict == "easy"
    assert DifficultyTally(right=0, wrong=2, unscored=2).verdict == "hard"
    assert DifficultyTally(right=0, wrong=0, unscored=4).verdict == "unjudged"


def test_one_difficulty_round_is_refused(tokenizer):
    with pytest.raises(ValueError, match="at least 2"):
        asyncio.run(curate([], CurationOptions(1024, 64, difficulty_rounds=1), tokenizer=tokenizer))


@needs_data
def test_cli_prepare_data_writes_both_layouts(tmp_path):
    from typer.testing import CliRunner

    from cerm_reward.cli.app import app

    verl_path, openrlhf_path = tmp_path / "train.parquet", tmp_path / "train.jsonl"
    result = CliRunner().invoke(
        app,
        [
            "train", "prepare-data", str(DATA / "llmbar" / "Adversarial_Manual.json"), "--format", "llmbar",
            "--verl-output", str(verl_path), "--openrlhf-output", str(openrlhf_path),
            "--max-prompt-length", "2048", "--criteria-max-tokens", "256",
        ],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    lines = openrlhf_path.read_text().splitlines()
    assert 0 < len(lines) <= 46 and f"kept {len(lines)}" in result.output
    import pandas as pd

    assert len(pd.read_parquet(verl_path)) == len(lines)
