"""Judge-training rows in the layouts the trainers read.

verl: one parquet row per pair. ``prompt`` is the query as a one-message chat (verl's dataset
needs a chat there and measures it); the two-stage agent loop, named in ``agent_name``, renders
the judge's own prompts from ``extra_info``, which keeps the whole pair (query, chosen,
rejected) because every column reaches the agent loop.

OpenRLHF: one jsonl line per pair, ``{"prompt": query, "label": <the pair as JSON text>}``;
OpenRLHF hands both strings to the agent executor unchanged.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from cerm_reward.data.pairs import PreferencePair

TWO_STAGE_AGENT_NAME = "cerm_two_stage_judge"
"""The name the verl agent loop is registered under (the ``agent_name`` column)."""


def pair_payload(pair: PreferencePair) -> dict[str, Any]:
    """The fields the rollout needs, as plain JSON-able values."""
    return {"pair_id": pair.id, "query": pair.query, "chosen": pair.chosen, "rejected": pair.rejected}


def verl_judge_rows(pairs: list[PreferencePair], *, split: str = "train") -> list[dict[str, Any]]:
    return [
        {
            "data_source": f"cerm_judge/{pair.source}",
            "agent_name": TWO_STAGE_AGENT_NAME,
            "prompt": [{"role": "user", "content": pair.query}],
            "ability": "judge",
            "reward_model": {"style": "preference", "ground_truth": "chosen"},
            "extra_info": {**pair_payload(pair), "split": split, "index": index, "subset": pair.subset},
        }
        for index, pair in enumerate(pairs)
    ]


def openrlhf_judge_lines(pairs: list[PreferencePair]) -> list[dict[str, str]]:
    return [{"prompt": pair.query, "label": json.dumps(pair_payload(pair), ensure_ascii=False)} for pair in pairs]


def write_verl_parquet(rows: list[dict[str, Any]], path: Path) -> None:
    import pandas as pd

    path.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).to_parquet(path, index=False)
