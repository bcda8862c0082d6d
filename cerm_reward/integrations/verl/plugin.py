"""verl plugin (entry point group ``verl.plugins``), loaded by ``import verl`` in every process.

It registers the ``cerm`` reward manager, the config resolvers ``reward=cerm`` uses, the
``cerm_single_turn_agent`` loop (criteria prefetch) and, for training the judge, the
``cerm_two_stage_judge`` loop and the ``cerm_precomputed`` advantage estimator, so ``reward.reward_manager.name=cerm`` resolves
inside verl's Ray reward workers and not only in the driver, and puts the judge's
metrics into verl's logger. verl swallows plugin errors at DEBUG level, so a failure
here is logged at ERROR: otherwise the user would only see "Reward manager is not
registered" with no cause. Losing the metrics is not worth stopping training for.
"""

from __future__ import annotations

import logging

logger = logging.getLogger("cerm_reward.verl")

try:
    from cerm_reward.integrations.verl import resolvers as _resolvers

    _resolvers.register()  # before verl's task runner resolves `reward.reward_model.*` (they point at reward.cerm)
    from cerm_reward.integrations.verl import manager as _manager  # noqa: F401  (registers "cerm")
except Exception:
    logger.exception("cerm-reward: the verl plugin failed to load; reward_manager.name=cerm will be unknown to verl")
    raise

try:
    from cerm_reward.integrations.verl import agent_loop as _agent_loop  # noqa: F401  (registers the prefetching loop)
except Exception:
    logger.exception("cerm-reward: the criteria-prefetch agent loop is unavailable; rollouts use verl's own loops")

try:
    from cerm_reward.integrations.verl import judge_training as _judge_training  # noqa: F401  (two-stage judge training)
except Exception:
    logger.exception("cerm-reward: the two-stage judge-training agent loop and advantage estimator are unavailable")

try:
    from cerm_reward.integrations.verl import tracking as _tracking

    _tracking.install()
except Exception:
    logger.exception("cerm-reward: judge metrics will not reach verl's logger")
