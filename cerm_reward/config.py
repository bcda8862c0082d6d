"""Typed configuration: the one source of defaults.

Every knob of the judge and its engine lives here, with its default and the
reason for it. The YAML files under ``recipes/`` and the CLI flags override
these values; nothing else defines a default. ``cerm config`` prints the
effective configuration so the defaults are always visible.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar, Union

import yaml
from pydantic import Discriminator, Field, Tag, TypeAdapter, ValidationError, field_validator, model_validator

from cerm_reward.errors import ConfigError
from cerm_reward.frozen import FrozenModel


class SamplingConfig(FrozenModel):
    """Decoding settings of one judge turn."""

    max_tokens: int = Field(gt=0)
    temperature: float = Field(default=0.0, ge=0.0)
    top_p: float = Field(default=1.0, gt=0.0, le=1.0)
    seed: int | None = None
    ignore_eos: bool = False
    """Always generate ``max_tokens`` tokens (``cerm bench``: repeatable lengths; never for real judging)."""


class FailurePolicy(FrozenModel):
    """What happens, in order, when an evaluation yields no usable score.

    1. ``max_resamples`` rounds re-sample only the failed samples (at
       ``resample_temperature``: re-running greedy decoding would repeat the failure);
    2. if ``repair`` is on, one short turn asks for the final score under a
       structured-output regex, so even a weak judge ends with a parseable score;
    3. the terminal ``on_failure`` policy: ``exclude`` (score ``None``), ``neutral``
       (``neutral_score``) or ``minimum`` (the bottom of the score range).
    The failure kind stays on the judgement in every case.
    """

    max_resamples: int = Field(default=2, ge=0)
    resample_temperature: float = Field(default=0.7, gt=0.0)
    repair: bool = False
    repair_max_tokens: int = Field(default=16, gt=0)
    on_failure: Literal["exclude", "neutral", "minimum"] = "exclude"
    neutral_score: float = 5.0


class CermJudgeConfig(FrozenModel):
    """The CE-RM protocol and its safeguards (``judge.kind: cerm``, the default judge).

    Token budgets default to those of a public CE-RM-4B evaluation script (4096
    criteria, 8192 evaluation); decoding is greedy as for benchmarks.
    """

    kind: Literal["cerm"] = "cerm"
    template: str = "cerm-v1"
    """A built-in template version or the path of a YAML template file."""
    criteria: SamplingConfig = SamplingConfig(max_tokens=4096)
    evaluation: SamplingConfig = SamplingConfig(max_tokens=8192)
    samples_per_response: int = Field(default=1, ge=1)
    """Test-time scaling: k sampled evaluations per response, aggregated by ``aggregate``."""
    scaling_temperature: float = Field(default=0.7, gt=0.0)
    """Temperature of the k samples when k > 1 (greedy samples would be identical)."""
    aggregate: Literal["mean", "median"] = "mean"
    min_valid_samples: int = Field(default=1, ge=1)
    """A response is scored when at least this many of its k samples parsed."""
    score_range: tuple[float, float] = (0.0, 10.0)
    failure: FailurePolicy = FailurePolicy()
    call_timeout_s: float = Field(default=600.0, gt=0.0)
    """Deadline of one engine call; a late call is a ``timeout`` failure, never a hang."""
    criteria_cache_size: int = Field(default=4096, ge=1)
    empty_response_score: float | None = 0.0
    """Score of an empty or whitespace-only response, given without an engine call
    (flagged ``empty_response``); ``None`` sends it to the judge like any other."""
    overlong_response: Literal["truncate", "fail"] = "truncate"
    """A response that does not fit the context: cut it to fit (flagged
    ``response_truncated``) or fail it as ``prompt_too_long``."""
    context_margin_tokens: int = Field(default=32, ge=0)
    """Slack kept between prompt + budget and the context length."""
    require_criteria_block: bool = False
    """Treat criteria without a ``[Start of Criteria]`` block as a failed turn (retried)."""

    @model_validator(mode="after")
    def _check(self) -> CermJudgeConfig:
        low, high = self.score_range
        if low >= high:
            raise ValueError(f"score_range must be increasing, got {self.score_range}")
        if self.min_valid_samples > self.samples_per_response:
            raise ValueError("min_valid_samples cannot exceed samples_per_response")
        return self

    @property
    def failed_score(self) -> float | None:
        """The value the terminal failure policy gives a response without a judge score."""
        return {"exclude": None, "neutral": self.failure.neutral_score, "minimum": self.score_range[0]}[self.failure.on_failure]

    @property
    def fallback_score(self) -> float:
        """What a consumer that needs a number (verl, OpenRLHF) gets for an excluded score."""
        return self.failure.neutral_score

    def describe_failure_policy(self) -> str:
        """One line with the settings that decide what a failed evaluation becomes (logged at start)."""
        policy = self.failure
        terminal = policy.on_failure + (" (score None)" if self.failed_score is None else f" ({self.failed_score:g})")
        empty = "judged" if self.empty_response_score is None else f"{self.empty_response_score:g}"
        return (
            f"failure policy: resample failed samples up to {policy.max_resamples}x at T={policy.resample_temperature:g}, "
            f"repair turn {'on' if policy.repair else 'off'}, then {terminal}; "
            f"call timeout {self.call_timeout_s:g}s; empty response -> {empty}; overlong response -> {self.overlong_response}"
        )


class CriticJudgeConfig(FrozenModel):
    """Critic-RM (``judge.kind: critic_rm``): k critiques per response from an engine, then the
    scalar head of a checkpoint written by ``cerm critic train``, averaged over the k."""

    kind: Literal["critic_rm"] = "critic_rm"
    checkpoint: str | None = None
    """Folder written by ``cerm critic train`` (model + ``reward_head/``); required."""
    critiques_per_response: int = Field(default=1, ge=1)
    """k > 1: sample k critiques and average the head scores (inference-time scaling)."""
    critique: SamplingConfig = SamplingConfig(max_tokens=1024, temperature=0.0)
    scaling_temperature: float = Field(default=0.8, gt=0.0)
    """Temperature of the k critiques when k > 1."""
    head_device: str = "auto"
    """``auto``: CUDA when present, else CPU."""
    head_batch_size: int = Field(default=8, ge=1)
    call_timeout_s: float = Field(default=600.0, gt=0.0)
    failure_score: float | None = None
    """Score of a response whose critique call failed (engine error, timeout); ``None`` = exclude."""
    neutral_score: float = 0.0
    """What a consumer that needs a number (verl, OpenRLHF) gets for an excluded score. The head
    is trained on score differences only (Bradley-Terry), so no value is neutral by construction:
    0 is where an untrained head starts; set the mean head score of your data for a better one."""

    @field_validator("checkpoint", mode="before")
    @classmethod
    def _path_as_text(cls, value: Any) -> Any:
        return os.fspath(value) if isinstance(value, os.PathLike) else value  # a CLI Path or a caller's

    @model_validator(mode="after")
    def _check(self) -> CriticJudgeConfig:
        if not self.checkpoint:
            raise ValueError("critic_rm judge: judge.checkpoint is required (a folder written by `cerm critic train`)")
        return self

    @property
    def failed_score(self) -> float | None:
        return self.failure_score

    @property
    def fallback_score(self) -> float:
        return self.neutral_score

    def describe_failure_policy(self) -> str:
        terminal = "excluded (score None)" if self.failure_score is None else f"{self.failure_score:g}"
        return (
            f"failure policy: a response whose critique call fails is {terminal} (no retry; the head never fails); "
            f"call timeout {self.call_timeout_s:g}s"
        )


JudgeSection = Union[CermJudgeConfig, CriticJudgeConfig]
"""Any judge kind's ``judge`` section (what a host reads: ``failed_score``, ``fallback_score``, the policy line)."""

JUDGE_CONFIGS: dict[str, type[JudgeSection]] = {"cerm": CermJudgeConfig, "critic_rm": CriticJudgeConfig}
"""``judge.kind`` -> its settings class; :mod:`cerm_reward.judges.registry` adds how each kind is opened."""


def _judge_kind(value: Any) -> str:
    return value.get("kind", "cerm") if isinstance(value, dict) else getattr(value, "kind", "cerm")


AnyJudgeConfig = Annotated[
    Union[Annotated[CermJudgeConfig, Tag("cerm")], Annotated[CriticJudgeConfig, Tag("critic_rm")]],
    Discriminator(_judge_kind),
]
"""The ``judge`` section: its ``kind`` (default ``cerm``) picks the judge type."""

_JUDGE_ADAPTER: TypeAdapter[JudgeSection] = TypeAdapter(AnyJudgeConfig)


def judge_config_of(data: dict[str, Any]) -> JudgeSection:
    """A ``judge`` section read back from its JSON form (a Ray replica's ``ready()`` answer)."""
    return _JUDGE_ADAPTER.validate_python(data)


def _judge_defaults(kind: str) -> dict[str, Any]:
    return JUDGE_CONFIGS[kind].model_construct().model_dump(mode="json")


class EngineConfig(FrozenModel):
    """Which engine runs the judge model, and how."""

    kind: Literal["vllm", "http"] = "vllm"
    """``vllm``: in-process vLLM; ``http``: any OpenAI-compatible server."""
    model: str | None = None
    """Local path or hub id (e.g. ``PKU-ONELab/CE-RM-4B``); ``None`` = the embedded default judge.
    For ``http`` it is the served model name (asked from ``/v1/models`` when ``None``)."""
    base_url: str | None = None
    """``http`` only: ``http://host:port`` (``/v1`` optional) or verl's bare ``host:port``."""
    base_urls: tuple[str, ...] = ()
    """``http`` only, instead of ``base_url``: several servers of the same model (verl's reward servers);
    every call of one conversation goes to one of them, so a group's shared prefix stays cached."""
    api_key: str | None = None
    structured_output_style: Literal["vllm", "sglang"] = "vllm"
    """How an ``http`` server takes a regex constraint: vLLM's ``structured_outputs`` or SGLang's ``regex``."""
    max_concurrency: int = Field(default=256, ge=1)
    """``http`` only: open requests at once."""
    chat_template_kwargs: dict[str, Any] = Field(default_factory=lambda: {"enable_thinking": False})
    # In-process vLLM settings.
    max_model_len: int | None = None
    dtype: str = "auto"
    tensor_parallel_size: int = Field(default=1, ge=1)
    gpu_memory_utilization: float = Field(default=0.85, gt=0.0, le=1.0)
    """On a CPU build vLLM reads this as the share of *host* memory."""
    kv_cache_gib: float | None = None
    """Fixed KV-cache size; overrides ``gpu_memory_utilization`` (the safe choice on CPU)."""
    enforce_eager: bool = False
    enable_prefix_caching: bool = True
    """The evaluations of a group share [template, query, criteria]: keep it on."""
    seed: int = 0


class CermConfig(FrozenModel):
    """Everything ``cerm`` needs: the engine and the judge."""

    engine: EngineConfig = EngineConfig()
    judge: AnyJudgeConfig = CermJudgeConfig()

    @property
    def judge_engine(self) -> EngineConfig:
        """The engine that runs the judge model. A Critic-RM checkpoint is its own critic: it is
        served in process unless the configuration names another model or a server."""
        if isinstance(self.judge, CriticJudgeConfig) and self.engine.kind == "vllm" and self.engine.model is None:
            return self.engine.model_copy(update={"model": self.judge.checkpoint})
        return self.engine

    @classmethod
    def from_file(cls, path: str | Path) -> CermConfig:
        try:
            data = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as error:
            raise ConfigError(f"{path}: cannot read the configuration: {error}") from None
        if not isinstance(data, dict):
            raise ConfigError(f"{path}: expected a mapping with 'engine' and/or 'judge'")
        return validated(cls, data, str(path))

    def with_overrides(self, overrides: dict[str, Any]) -> CermConfig:
        """Apply dotted overrides such as ``{"judge.evaluation.max_tokens": 256}`` (None = keep).

        ``judge.kind`` is applied first: switching the judge type starts its section from that
        type's defaults, and is refused when the current section holds settings it would drop.
        """
        full = self.model_dump()
        data = self.model_dump(exclude_unset=True)  # what was set stays set: see judges/budgets.py
        kind = overrides.get("judge.kind")
        if kind is not None and kind != self.judge.kind:
            if kind not in JUDGE_CONFIGS:
                raise ConfigError(f"unknown judge kind {kind!r}; expected one of {', '.join(JUDGE_CONFIGS)}")
            if self.judge.model_dump(mode="json") != _judge_defaults(self.judge.kind):
                raise ConfigError(
                    f"the configuration's judge section sets {self.judge.kind} settings; "
                    f"it cannot be switched to judge.kind={kind} (start the section from kind: {kind})"
                )
            full["judge"] = _judge_defaults(kind)
            data["judge"] = {"kind": kind}
        for dotted, value in overrides.items():
            if value is None:
                continue
            *parents, leaf = dotted.split(".")
            known, node = full, data
            for name in parents:
                known = known.get(name) if isinstance(known, dict) else None
                node = node.setdefault(name, {}) if isinstance(known, dict) else node
            if not isinstance(known, dict) or leaf not in known:
                raise ConfigError(f"unknown configuration key {dotted!r} (judge.kind={full['judge']['kind']})")
            node[leaf] = value
        return validated(type(self), data, "overrides")

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.model_dump(mode="json"), sort_keys=False)


Settings = TypeVar("Settings", bound=FrozenModel)


def validated(cls: type[Settings], data: Any, source: str) -> Settings:
    """``cls`` from ``data``, a validation failure reported as one :class:`ConfigError` line per bad field.

    Every settings model read from a user's file or flags goes through here, so a bad value is a
    user error naming its field (``cerm`` exit code 2), never a pydantic traceback.
    """
    try:
        return cls.model_validate(data)
    except ValidationError as error:
        fields = "; ".join(_field_problem(problem) for problem in error.errors())
        raise ConfigError(f"{source}: {fields}") from None


def _field_problem(problem: Any) -> str:
    """``judge.evaluation.max_tokens: Input should be greater than 0`` (the kind tag left out of the path)."""
    where = ".".join(str(part) for part in problem["loc"] if part not in JUDGE_CONFIGS) or "(top level)"
    return f"{where}: {problem['msg'].removeprefix('Value error, ')}"
