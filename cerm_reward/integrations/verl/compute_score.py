"""``custom_reward_function``: CE-RM as an async ``compute_score`` for verl.

For users who keep verl's ``naive`` manager (or another one) and plug the judge in as
a function::

    reward.custom_reward_function.path=pkg://cerm_reward.integrations.verl.compute_score
    reward.custom_reward_function.name=compute_score
    +reward.custom_reward_function.reward_kwargs.cerm={pool: {replicas: 2}}

verl passes no prompt to a reward function, so the query comes from ``extra_info``
(``cerm verl prepare-data`` writes it as ``extra_info.prompt``, the chat the policy
saw). When verl hosts the judge model itself (``reward.reward_model.enable=True``) it
adds ``reward_router_address``: the judge then talks to that OpenAI-compatible router
instead of starting its own engine (served model name from ``cerm.engine.model``, else
asked from the router's ``/v1/models``), and still shares criteria through the pool.
"""

from __future__ import annotations

from typing import Any

from cerm_reward.integrations.verl.client import client_for
from cerm_reward.integrations.verl.metrics import is_validation
from cerm_reward.integrations.verl.settings import VerlJudgeSettings

QUERY_KEYS = ("prompt", "raw_prompt", "question", "query")
"""Where the query is looked for in ``extra_info``, in order."""


def query_of(extra_info: dict[str, Any] | None) -> Any:
    for key in QUERY_KEYS:
        if extra_info and extra_info.get(key) is not None:
            value = extra_info[key]
            return value if isinstance(value, str) else [dict(message) for message in value]
    raise KeyError(
        f"cerm compute_score: extra_info has none of {list(QUERY_KEYS)}; verl does not pass the prompt to a "
        "reward function, so the data must carry it (see `cerm verl prepare-data`)"
    )


async def compute_score(
    data_source: str | None = None,
    solution_str: str = "",
    ground_truth: Any = None,
    extra_info: dict[str, Any] | None = None,
    reward_router_address: str | None = None,
    reward_model_tokenizer: Any = None,
    cerm: Any = None,
    **_: Any,
) -> dict[str, Any]:
    """``{"score": reward, **reward_extra_info}``: the same fixed keys on every path.

    ``cerm`` (from ``reward_kwargs``) takes the keys of the ``reward.cerm`` node.
    """
    settings = VerlJudgeSettings.from_node(cerm)
    client = client_for(settings, reward_router_address=reward_router_address)
    reward, extra = await client.judge(query_of(extra_info), solution_str, validation=is_validation(extra_info))
    return {"score": reward, **extra}
