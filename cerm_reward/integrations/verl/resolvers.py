"""OmegaConf resolvers that let ``reward=cerm`` map the judge's keys onto verl's own.

With verl hosting the judge (``reward.reward_model.enable=True``), verl reads the model,
tensor-parallel size and memory share from ``reward.reward_model.*``; the user sets them
once, as ``reward.cerm.engine.*``, and ``config/reward/cerm.yaml`` points verl's keys at
them. A ``cerm.engine`` key left null must fall back to a default, which OmegaConf's own
``oc.select`` does not do (it returns the null), hence ``cerm.first``. verl's standalone
reward pool streams rewards during rollout and must never put its engines to sleep, while
a colocated one sleeps between steps, hence ``cerm.not`` over ``enable_resource_pool``.

Registered wherever a config can be resolved: by the ``verl.plugins`` entry point (every
process that imports verl, including verl's task runner, which resolves the config) and by
the Hydra search-path plugin (the driver that composes it).
"""

from __future__ import annotations

from typing import Any

from omegaconf import OmegaConf


def first_set(*values: Any) -> Any:
    """The first value that is not null (the last one is the default)."""
    return next((value for value in values if value is not None), None)


def negated(value: Any) -> bool:
    """``not value`` for a boolean key, also when it arrives as the text ``"true"`` / ``"false"``."""
    if isinstance(value, str):
        return value.strip().lower() not in ("true", "1", "yes")
    return not value


RESOLVERS = {"cerm.first": first_set, "cerm.not": negated}


def register() -> None:
    """Register the resolvers once per process (a second call is a no-op)."""
    for name, function in RESOLVERS.items():
        if not OmegaConf.has_resolver(name):
            OmegaConf.register_new_resolver(name, function)
