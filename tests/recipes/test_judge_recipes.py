"""The judge configs of ``recipes/judge/`` through ``CermConfig.from_file``, which refuses an unknown key
(every section is a ``FrozenModel`` with ``extra="forbid"``), so each key in them is one cerm reads."""

from __future__ import annotations

import pytest

from cerm_reward.config import CermConfig, CermJudgeConfig
from tests.recipes.launchers import RECIPES


@pytest.mark.parametrize("name", ["ce-rm-4b.yaml", "ce-rm-4b-http.yaml"])
def test_judge_config_loads_with_the_published_ce_rm_4b_budgets(name):
    config = CermConfig.from_file(RECIPES / "judge" / name)
    assert isinstance(config.judge, CermJudgeConfig) and config.engine.kind in ("vllm", "http")
    assert (config.judge.criteria.max_tokens, config.judge.evaluation.max_tokens) == (4096, 8192)


def test_in_process_config_leaves_the_evaluation_room_for_its_prompt():
    """The evaluation prompt holds the criteria, so the context must take both budgets, and the query and response."""
    config = CermConfig.from_file(RECIPES / "judge" / "ce-rm-4b.yaml")
    judge = config.judge
    assert config.engine.kind == "vllm" and config.engine.model == "PKU-ONELab/CE-RM-4B"
    budgets = judge.criteria.max_tokens + judge.evaluation.max_tokens + judge.context_margin_tokens
    assert config.engine.max_model_len is not None and config.engine.max_model_len - budgets >= 8192  # query + response
