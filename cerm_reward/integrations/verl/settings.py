"""The ``reward.cerm`` config node: what a verl user sets to choose and shape the judge.

verl hands reward managers the whole trainer config as an OmegaConf node; this module
turns the ``cerm`` part of it into validated settings, so a typo in a key fails at
start-up with the key's name instead of being ignored.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from pydantic import Field, field_validator

from cerm_reward.config import CermConfig
from cerm_reward.errors import ConfigError
from cerm_reward.frozen import FrozenModel
from cerm_reward.serving.ray_pool import NAMESPACE, PoolConfig

DEFAULT_POOL_NAME = "cerm-judge"
"""The pool's name when neither ``pool.name`` nor ``trainer.experiment_name`` gives one."""


def job_namespace(job_id: str) -> str:
    """The Ray namespace of one job's own judge actors (its pool unless detached, and its metrics collector)."""
    return f"{NAMESPACE}.job-{job_id}"


def current_job_namespace() -> str:
    """:func:`job_namespace` of the Ray job this process belongs to (the same in verl's driver and workers)."""
    import ray

    return job_namespace(ray.get_runtime_context().get_job_id())


class PolicyOutputSettings(FrozenModel):
    """How a policy rollout is cleaned before the judge sees it."""

    strip_think: bool = True
    """Drop ``<think>...</think>`` reasoning: the judge scores the answer the user would read."""
    think_open: str = "<think>"
    think_close: str = "</think>"


class MetricsSettings(FrozenModel):
    enable: bool = True
    """Add ``cerm/*`` judge metrics to every step verl logs (console, W&B, ...)."""
    table_rows: int = Field(default=4, ge=0)
    """Criteria/critique examples per step in the W&B table ``cerm/examples`` (0 = none)."""


class VerlPoolSettings(PoolConfig):
    """``reward.cerm.pool``: :class:`PoolConfig` whose name and namespace default to the job's own.

    Two jobs on one cluster must not share a judge (nor its metrics), so an unset ``name``
    becomes ``cerm-<trainer.experiment_name>`` and an unset ``namespace`` the job's own
    (``cerm_reward.job-<Ray job id>``). A ``detached`` pool is meant to be found by the next
    run, so its default namespace is the shared ``cerm_reward``.
    """

    name: str | None = None  # type: ignore[assignment]
    namespace: str | None = None  # type: ignore[assignment]

    def resolved(self, experiment: str | None, job_namespace: str) -> PoolConfig:
        name = self.name or (f"cerm-{_actor_safe(experiment)}" if experiment else DEFAULT_POOL_NAME)
        namespace = self.namespace or (NAMESPACE if self.detached else job_namespace)
        return PoolConfig.model_validate({**self.model_dump(), "name": name, "namespace": namespace})


def _actor_safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-") or DEFAULT_POOL_NAME


class VerlJudgeSettings(FrozenModel):
    """``reward.cerm`` in a verl config (see ``config/reward/cerm.yaml`` for the commented defaults)."""

    config: str | None = None
    """A ``cerm config`` YAML (engine + judge); ``engine`` and ``judge`` below override its keys."""
    engine: dict[str, Any] = Field(default_factory=dict)
    judge: dict[str, Any] = Field(default_factory=dict)
    pool: VerlPoolSettings = VerlPoolSettings()
    experiment: str | None = None
    """``trainer.experiment_name``, read from the trainer config (the default pool name derives from it)."""
    policy_output: PolicyOutputSettings = PolicyOutputSettings()
    metrics: MetricsSettings = MetricsSettings()

    @field_validator("engine", "judge", mode="before")
    @classmethod
    def _empty_section(cls, value: Any) -> Any:
        return {} if value is None else value  # a YAML section whose keys are all commented out

    @classmethod
    def from_trainer_config(cls, trainer_config: Any) -> VerlJudgeSettings:
        """Read ``reward.cerm`` from verl's trainer config (absent = all defaults)."""
        reward = trainer_config.get("reward") or {}
        settings = cls.from_node(reward.get("cerm"))
        experiment = (trainer_config.get("trainer") or {}).get("experiment_name")
        return settings.model_copy(update={"experiment": experiment}) if experiment else settings

    def pool_config(self, job_namespace: str | None = None) -> PoolConfig:
        """The pool this job's judge runs on (name and namespace resolved; see :class:`VerlPoolSettings`)."""
        return self.pool.resolved(self.experiment, job_namespace or current_job_namespace())

    @classmethod
    def from_node(cls, node: Any) -> VerlJudgeSettings:
        """Settings from an OmegaConf node, a plain mapping or ``None``."""
        if node is None:
            return cls()
        if type(node).__module__.startswith("omegaconf"):
            from omegaconf import OmegaConf

            node = OmegaConf.to_container(node, resolve=True)
        return cls.model_validate(dict(node))

    def cerm_config(
        self,
        *,
        reward_router_address: str | None = None,
        router_model: str | None = None,
        reward_servers: Sequence[str] = (),
    ) -> CermConfig:
        """The judge's config; with verl hosting the judge model, the engine speaks HTTP to verl's
        ``reward_servers`` (each query on one of them: prefix-aware routing), else to its router."""
        base = CermConfig.from_file(self.config) if self.config else CermConfig()
        overrides: dict[str, Any] = {}
        _flatten("engine", self.engine, overrides)
        _flatten("judge", self.judge, overrides)
        if reward_router_address is not None:
            self._check_verl_hosted(base.with_overrides(overrides), router_model)
            # engine.model None: the one model verl's servers list. verl serves its local copy of model_path,
            # whose name is not always model_path itself.
            overrides.update({"engine.kind": "http", "engine.base_url": reward_router_address, "engine.model": None})
            overrides["engine.base_urls"] = tuple(reward_servers)
        return base.with_overrides(overrides)

    def _check_verl_hosted(self, configured: CermConfig, router_model: str | None) -> None:
        """With verl hosting the judge, a judge server of the user's own or another model is a contradiction:
        refuse it at start-up rather than silently judge with verl's servers and their model."""
        own_server = {key for key in ("kind", "base_url") if self.engine.get(key) is not None}
        if own_server:
            raise ConfigError(
                f"reward.cerm.engine.{sorted(own_server)[0]} names a judge server of your own, but verl hosts the judge "
                "(reward.reward_model.enable=True): drop it, or set reward.reward_model.enable=False"
            )
        model = configured.engine.model
        if model is not None and router_model is not None and model != router_model:
            raise ConfigError(
                f"the judge model is {model!r} in reward.cerm but verl's reward servers load {router_model!r} "
                "(reward.reward_model.model_path): set the model once, as reward.cerm.engine.model"
            )


def _flatten(prefix: str, node: dict[str, Any], into: dict[str, Any]) -> None:
    for key, value in node.items():
        dotted = f"{prefix}.{key}"
        if isinstance(value, dict) and not dotted.endswith("chat_template_kwargs"):
            _flatten(dotted, value, into)
        else:
            into[dotted] = value
