"""``python -m cerm_reward.integrations.verl.main_ppo``: verl's ``main_ppo`` that understands ``reward_model=cerm``.

On verl's stock config a bare ``reward_model=cerm`` does not select anything: it
replaces the legacy ``reward_model`` node (which ``main_ppo`` never reads) with the
string ``"cerm"`` and training runs with the default rule-based reward. This entry
point composes ``cerm_ppo_trainer`` (verl's ``ppo_trainer`` plus a ``reward_model``
slot), so the switch works, and refuses a config in which the switch was swallowed.
Every other argument is verl's.
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


@hydra.main(config_path="pkg://verl.trainer.config", config_name="cerm_ppo_trainer", version_base=None)
def main(config: Any) -> None:
    from verl.trainer import main_ppo

    check_reward_switch(config)
    main_ppo.main.__wrapped__(config)


if __name__ == "__main__":
    main()
