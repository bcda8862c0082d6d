"""The shared judge flags of ``cerm score|serve|config|eval|needle``, and the configuration they make.

A command passes the flags it declares as a :class:`JudgeFlags` (the ones it lacks stay ``None``,
meaning "the configuration's value"). Which ``judge.*`` key a judge flag sets depends on the judge
kind; that map is the kind's entry in :data:`cerm_reward.judges.registry.JUDGE_KINDS`, so a third
judge kind brings its own flag meanings and the CLI needs no edit.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any, Optional

from cerm_reward.cli.choices import value_of
from cerm_reward.config import CermConfig
from cerm_reward.errors import ConfigError
from cerm_reward.judges.budgets import fit_budgets
from cerm_reward.judges.registry import JUDGE_KINDS, judge_kind

ENGINE_KEYS = {"model": "engine.model", "engine": "engine.kind", "base_url": "engine.base_url"}
"""Engine flags mean the same for every judge kind."""
_FLAG_NAMES = {"repair": "--repair/--no-repair"}


@dataclass(frozen=True)
class JudgeFlags:
    """The values of the shared flags as given on the command line (``None``: not given)."""

    judge: Optional[str] = None
    """A ``judge.kind`` to switch to; ``None`` keeps the configuration's kind."""
    checkpoint: Optional[Path] = None
    model: Optional[str] = None
    engine: Optional[Enum] = None
    base_url: Optional[str] = None
    criteria_max_tokens: Optional[int] = None
    eval_max_tokens: Optional[int] = None
    samples: Optional[int] = None
    repair: Optional[bool] = None
    on_failure: Optional[Enum] = None

    def given(self, name: str) -> Any:
        """The plain value of flag ``name`` (an unknown name is a bug: the registry names a flag the CLI lacks)."""
        value = getattr(self, name)
        return value_of(value) if isinstance(value, Enum) else value


def judge_settings(config: Optional[Path], flags: JudgeFlags) -> CermConfig:
    """The config file (or the defaults) with ``flags`` applied.

    ``flags.judge`` switches ``judge.kind``; each judge flag sets the key its kind's registry
    entry names, and a flag that kind has no use for is refused rather than ignored. The budgets
    are then fitted to the judge model's context before any engine loads (:func:`fit_budgets`).
    """
    base = CermConfig.from_file(config) if config else CermConfig()
    kind = judge_kind(flags.judge or base.judge.kind)
    judge_flags = {name for entry in JUDGE_KINDS.values() for name in entry.flags}
    for name in sorted(judge_flags - set(kind.flags)):
        if flags.given(name) is not None:
            flag = _FLAG_NAMES.get(name, "--" + name.replace("_", "-"))
            raise ConfigError(f"{flag} does not apply to the {kind.name} judge")
    keys = {**ENGINE_KEYS, **kind.flags}
    settings = base.with_overrides({"judge.kind": kind.name, **{key: flags.given(name) for name, key in keys.items()}})
    return fit_budgets(settings)
