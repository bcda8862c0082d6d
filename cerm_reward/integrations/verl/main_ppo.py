"""``python -m cerm_reward.integrations.verl.main_ppo``: verl's ``main_ppo`` that understands ``reward_model=cerm``.

On verl's stock config a bare ``reward_model=cerm`` does not select anything: it
replaces the legacy ``reward_model`` node (which ``main_ppo`` never reads) with the
string ``"cerm"`` and training runs with the default rule-based reward. This entry
point composes ``cerm_ppo_trainer`` (verl's ``ppo_trainer`` plus a ``reward_model``
slot), so the switch works, and refuses a config in which the switch was swallowed.
Every other argument is verl's.

It also places a judge that runs on GPUs of its own (``pool.num_gpus`` or
``pool.resources`` set) *before* verl reserves its resource pools: verl's STRICT_PACK
placement groups carry no node constraint and take any node's GPUs, the judge node's
included, so a pool created after them waits forever. verl's task runner reserves the
judge's placement (bounded by ``pool.placement_timeout_s``) and waits for its engines
(``pool.startup_timeout_s``) before it builds the trainer; the reward workers then attach.
"""

from __future__ import annotations

from typing import Any

import hydra

from cerm_reward.errors import ConfigError


class RewardSwitchError(ConfigError):
    """``reward_model`` holds a plain value: a switch was given that nothing applied."""


def check_reward_switch(config: Any) -> None:
    """Refuse a config whose ``reward_model`` was replaced by a plain value (a swallowed switch)."""
    node = config.get("reward_model") if hasattr(config, "get") else None
    if node is not None and not hasattr(node, "keys"):
        raise RewardSwitchError(
            f"reward_model={node!r} was not applied: verl's main_ppo ignores the top-level reward_model node. "
            "Use `reward=cerm` (or `+reward_model=cerm`) with verl's main_ppo, or "
            "`python -m cerm_reward.integrations.verl.main_ppo reward_model=cerm`."
        )


def self_placed_judge(config: Any) -> bool:
    """Whether the config runs the cerm judge on resources it places itself (not verl's reward pool)."""
    reward = config.get("reward") or {}
    if (reward.get("reward_manager") or {}).get("name") != "cerm" or (reward.get("reward_model") or {}).get("enable"):
        return False
    pool = (reward.get("cerm") or {}).get("pool") or {}
    return bool(pool.get("num_gpus") or pool.get("resources"))


def reserve_judge_pool(config: Any) -> None:
    """Start the job's judge pool (placement first, then engines), as the reward workers will find it."""
    from cerm_reward.integrations.verl.client import client_for
    from cerm_reward.integrations.verl.settings import VerlJudgeSettings

    client_for(VerlJudgeSettings.from_trainer_config(config))


def judge_first_task_runner(runner: Any) -> Any:
    """verl's task runner actor class, reserving the judge pool before it builds the trainer."""
    import ray

    class JudgeFirstTaskRunner(runner.__ray_actor_class__):
        def run(self, config: Any) -> Any:
            reserve_judge_pool(config)
            return super().run(config)

    return ray.remote(JudgeFirstTaskRunner)


@hydra.main(config_path="pkg://verl.trainer.config", config_name="cerm_ppo_trainer", version_base=None)
def main(config: Any) -> None:
    from verl.trainer import main_ppo

    check_reward_switch(config)
    if self_placed_judge(config):
        # verl's main looks the runner up at call time; this process is ours (python -m cerm_reward...).
        main_ppo.TaskRunnerV1 = judge_first_task_runner(main_ppo.TaskRunnerV1)
    main_ppo.main.__wrapped__(config)


if __name__ == "__main__":
    main()
