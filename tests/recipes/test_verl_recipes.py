"""The verl recipes up to their launch: launchers intercepted, argv composed by verl 0.9.1's own Hydra
configs, run through verl's own validation, and every override checked to be a key verl reads.

verl's trainers need GPUs, so the launch itself cannot run here. What runs is everything verl does
before it: ``main_ppo.main`` (``auto_set_device``, ``validate_config``, ``need_critic``...) with
``run_ppo`` stubbed, and for the SFT trainer the config building of ``SFTTrainer._build_config``.
Hydra already refuses a key that does not exist; the tables below catch a key that exists but that
verl does not read given the other settings, and a token budget below the sequences the data allows.
A warning from verl while validating fails the test like an error.
"""

from __future__ import annotations

import ast
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from fnmatch import fnmatch
from pathlib import Path
from typing import Any

import pytest

VERL = Path(pytest.importorskip("verl").__file__).parent

from omegaconf import OmegaConf  # noqa: E402

from cerm_reward.engines.embedded import embedded_checkpoint  # noqa: E402
from cerm_reward.integrations.verl.batches import compose_trainer_config  # noqa: E402
from tests.recipes.launchers import intercepted_argv  # noqa: E402


@dataclass(frozen=True)
class Unread:
    """Overrides matching ``keys`` are not read by verl while ``when(config)`` holds."""

    keys: str
    when: Callable[[Any], bool]
    where: str


DYNAMIC_BATCHING = (
    "verl/workers/engine_workers.py (ActorRolloutRefWorker.init_model hands use_dynamic_bsz to the engine) and "
    "verl/workers/engine/utils.py::prepare_micro_batches: with use_dynamic_bsz, micro-batches are cut by "
    "max_token_len_per_gpu and micro_batch_size_per_gpu is never looked at"
)
UNREAD = (
    Unread(
        "actor_rollout_ref.actor.ppo_micro_batch_size*", lambda c: c.actor_rollout_ref.actor.use_dynamic_bsz, DYNAMIC_BATCHING
    ),
    Unread(
        "actor_rollout_ref.rollout.log_prob_micro_batch_size*",
        lambda c: c.actor_rollout_ref.rollout.log_prob_use_dynamic_bsz,
        DYNAMIC_BATCHING,
    ),
    Unread(
        "actor_rollout_ref.ref.log_prob_micro_batch_size*",
        lambda c: c.actor_rollout_ref.ref.log_prob_use_dynamic_bsz,
        DYNAMIC_BATCHING,
    ),
    Unread("critic.*micro_batch_size*", lambda c: c.critic.use_dynamic_bsz, DYNAMIC_BATCHING),
    Unread(
        "data.micro_batch_size_per_gpu",
        lambda c: c.data.use_dynamic_bsz,
        "verl/trainer/sft_trainer.py::SFTTrainer.fit passes use_dynamic_bsz to prepare_micro_batches; " + DYNAMIC_BATCHING,
    ),
    Unread(
        "actor_rollout_ref.actor.kl_loss_*",
        lambda c: not c.actor_rollout_ref.actor.use_kl_loss,
        "verl/workers/utils/losses.py::ppo_loss adds the KL term only under use_kl_loss",
    ),
    Unread(
        "algorithm.kl_ctrl.*",
        lambda c: not c.algorithm.use_kl_in_reward,
        "verl/trainer/ppo/v1/trainer_base.py builds and applies the KL controller only under use_kl_in_reward",
    ),
)


@dataclass(frozen=True)
class TokenBudget:
    """With dynamic batching on (``switch``), ``budget`` must hold the longest sequence the data allows:
    verl/utils/seqlen_balancing.py::rearrange_micro_batches asserts ``max_token_len >= max_seq_len``."""

    budget: str
    switch: str
    longest: Callable[[Any], int]


def _ppo_sequence(config: Any) -> int:
    return config.data.max_prompt_length + config.data.max_response_length


TOKEN_BUDGETS = (
    TokenBudget("actor_rollout_ref.actor.ppo_max_token_len_per_gpu", "actor_rollout_ref.actor.use_dynamic_bsz", _ppo_sequence),
    TokenBudget(
        "actor_rollout_ref.rollout.log_prob_max_token_len_per_gpu",
        "actor_rollout_ref.rollout.log_prob_use_dynamic_bsz",
        _ppo_sequence,
    ),
    TokenBudget(
        "actor_rollout_ref.ref.log_prob_max_token_len_per_gpu", "actor_rollout_ref.ref.log_prob_use_dynamic_bsz", _ppo_sequence
    ),
    TokenBudget("critic.ppo_max_token_len_per_gpu", "critic.use_dynamic_bsz", _ppo_sequence),
    TokenBudget("data.max_token_len_per_gpu", "data.use_dynamic_bsz", lambda c: c.data.max_length),
)

_ABSENT = object()


def override_keys(overrides: list[str]) -> list[str]:
    return [item.split("=", 1)[0] for item in overrides]


def assert_every_override_is_read(config: Any, overrides: list[str]) -> None:
    """(a) each key is in the composed config; keys added with ``+`` only under our own ``reward.cerm``
    group (read by VerlJudgeSettings, which refuses unknown keys); (b) no key is one verl skips."""
    for key in override_keys(overrides):
        plain = key.lstrip("+")
        assert plain == key or plain.startswith("reward.cerm."), f"{key}: added to verl's config, which nothing reads"
        assert OmegaConf.select(config, plain, default=_ABSENT) is not _ABSENT, f"{plain} is not in the composed config"
        for rule in UNREAD:
            assert not (fnmatch(plain, rule.keys) and rule.when(config)), f"{plain} is ignored by verl here: {rule.where}"
    for rule in TOKEN_BUDGETS:
        if OmegaConf.select(config, rule.switch, default=False):
            budget, longest = OmegaConf.select(config, rule.budget), rule.longest(config)
            assert budget >= longest, f"{rule.budget}={budget} < {longest} tokens the data allows ({TokenBudget.__doc__})"


def test_the_read_key_rules_catch_the_defects_they_were_written_for():
    """The check can fail: judge_sft.sh as shipped before the fix, a micro-batch key under dynamic batching."""
    sft = ["data.micro_batch_size_per_gpu=2", "data.max_length=16384"]
    with pytest.raises(AssertionError, match="data.micro_batch_size_per_gpu is ignored"):
        assert_every_override_is_read(compose_trainer_config(*sft, config_name="sft_trainer_engine"), sft)
    with pytest.raises(AssertionError, match="data.max_token_len_per_gpu=8192 < 16384"):
        assert_every_override_is_read(compose_trainer_config(*sft[1:], config_name="sft_trainer_engine"), sft[1:])
    ppo = ["actor_rollout_ref.actor.use_dynamic_bsz=True", "actor_rollout_ref.rollout.log_prob_micro_batch_size_per_gpu=8"]
    with pytest.raises(AssertionError, match="log_prob_micro_batch_size_per_gpu is ignored"):
        assert_every_override_is_read(compose_trainer_config(*ppo), ppo)
    with pytest.raises(AssertionError, match="added to verl's config"):
        assert_every_override_is_read(compose_trainer_config("+trainer.typo=1"), ["+trainer.typo=1"])


def run_verl_main_up_to_launch(entry: Callable[[Any], None], config: Any, monkeypatch, capsys) -> None:
    """verl's ``main_ppo.main`` body on ``config`` with ``run_ppo`` (Ray, the workers, training) stubbed;
    a warning or a ``WARNING``/``NOTICE`` line from verl's validation fails."""
    from verl.trainer import main_ppo

    launched = []
    monkeypatch.setattr(main_ppo, "run_ppo", lambda config, task_runner_class: launched.append(task_runner_class))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        entry(config)
    assert [str(w.message) for w in caught] == []
    notices = [line for line in capsys.readouterr().out.splitlines() if line.startswith(("WARNING", "NOTICE"))]
    assert notices == [] and len(launched) == 1


def build_worker_configs(config: Any) -> None:
    """The dataclasses verl's workers build from the composed config (their ``__post_init__`` checks run)."""
    from verl.utils.config import omega_conf_to_dataclass

    for section in ("model", "rollout"):
        omega_conf_to_dataclass(config.actor_rollout_ref[section])


def test_judge_rl_recipe_composes_passes_verls_validation_and_every_key_is_read(tmp_path, monkeypatch, capsys):
    from verl.trainer import main_ppo

    judge = str(embedded_checkpoint())  # a local checkpoint, so verl's model config loads offline
    [argv] = intercepted_argv(tmp_path, "verl/judge_grpo.sh", {"PYTHON": "python3", "SFT": judge, "DATA": "/data"}, "python3")[
        "python3"
    ]
    assert argv[:4] == ["-m", "verl.trainer.main_ppo", "--config-name", "cerm_judge_trainer"]
    overrides = argv[4:]
    config = compose_trainer_config(*overrides, config_name="cerm_judge_trainer")
    assert_every_override_is_read(config, overrides)
    run_verl_main_up_to_launch(main_ppo.main.__wrapped__, config, monkeypatch, capsys)
    build_worker_configs(config)
    actor = config.actor_rollout_ref.actor
    assert (actor.optim.lr, actor.kl_loss_coef, actor.ppo_mini_batch_size, config.data.train_batch_size) == (2e-6, 1e-3, 64, 256)
    assert config.actor_rollout_ref.rollout.n == 20 and config.algorithm.adv_estimator == "cerm_precomputed"
    assert config.data.train_files == "/data/judge_train.parquet"
    assert "hf_model" in actor.checkpoint.save_contents  # the saved huggingface/ folder is what the judge serves


def test_policy_grpo_recipe_hosts_the_judge_in_verls_reward_pool_and_every_key_is_read(tmp_path, monkeypatch, capsys):
    from verl.trainer import main_ppo
    from verl.utils.config import omega_conf_to_dataclass

    from cerm_reward.integrations.verl.settings import VerlJudgeSettings

    env = {"PYTHON": "python3", "DATA": "/data", "POLICY": str(embedded_checkpoint())}
    # both GRPO recipes source their shared policy/data/trainer arguments from verl/grpo_qwen3_8b_args.sh
    [argv] = intercepted_argv(tmp_path, "verl/grpo_qwen3_8b_cerm.sh", env, "python3")["python3"]
    assert argv[:2] == ["-m", "verl.trainer.main_ppo"]  # verl's own entry point: verl reserves every pool
    overrides = argv[2:]
    config = compose_trainer_config(*overrides)
    assert_every_override_is_read(config, overrides)
    run_verl_main_up_to_launch(main_ppo.main.__wrapped__, config, monkeypatch, capsys)
    build_worker_configs(config)
    reward_model = omega_conf_to_dataclass(config.reward.reward_model)  # as verl's trainer builds it
    assert reward_model.enable and reward_model.enable_resource_pool
    assert (reward_model.nnodes, reward_model.n_gpus_per_node) == (1, 8)
    assert reward_model.model_path == "PKU-ONELab/CE-RM-4B" and reward_model.rollout.tensor_model_parallel_size == 1
    assert reward_model.rollout.gpu_memory_utilization == 0.85 and reward_model.rollout.max_model_len == 16384
    assert not reward_model.rollout.free_cache_engine  # its own pool streams rewards during rollout: never asleep
    hosted = {"reward_router_address": "10.0.0.1:80", "router_model": reward_model.model_path}
    cerm = VerlJudgeSettings.from_trainer_config(config).cerm_config(**hosted)
    assert cerm.judge.failure.on_failure == "neutral" and config.actor_rollout_ref.rollout.n == 8


def test_judge_nodes_recipe_self_places_the_pool_through_our_entry_point_and_every_key_is_read(tmp_path, monkeypatch, capsys):
    from cerm_reward.integrations.verl import main_ppo as cerm_main_ppo
    from cerm_reward.integrations.verl.settings import VerlJudgeSettings, job_namespace

    env = {"PYTHON": "python3", "DATA": "/data", "POLICY": str(embedded_checkpoint())}
    [argv] = intercepted_argv(tmp_path, "verl/grpo_qwen3_8b_cerm_judge_nodes.sh", env, "python3")["python3"]
    assert argv[:2] == ["-m", "cerm_reward.integrations.verl.main_ppo"]
    overrides = argv[2:]
    config = compose_trainer_config(*overrides, config_name="cerm_ppo_trainer")  # the entry point's config
    assert_every_override_is_read(config, overrides)
    run_verl_main_up_to_launch(cerm_main_ppo.main.__wrapped__, config, monkeypatch, capsys)
    build_worker_configs(config)
    assert cerm_main_ppo.self_placed_judge(config) and not config.reward.reward_model.enable
    settings = VerlJudgeSettings.from_trainer_config(config)
    assert settings.pool.replicas == 8 and settings.pool.resources == {"cerm_judge": 1}
    pool = settings.pool_config(job_namespace("0a000000"))  # one pool per job: named after the experiment
    assert (pool.name, pool.namespace) == ("cerm-qwen3-8b-grpo-ce-rm-4b", "cerm_reward.job-0a000000")
    cerm = settings.cerm_config()  # our group, unknown keys refused
    assert cerm.engine.model == "PKU-ONELab/CE-RM-4B" and config.actor_rollout_ref.rollout.n == 8
    assert config.actor_rollout_ref.actor.use_kl_loss and config.actor_rollout_ref.actor.kl_loss_coef == 1e-3


def sft_build_config(config: Any) -> Any:
    """verl's ``SFTTrainer._build_config`` (and the profiler check it calls) run on ``config``.

    ``verl.trainer.sft_trainer`` does not import beside transformers 5 (its dataset module imports a
    Qwen2-VL class transformers 5 renamed), so its two methods are compiled from verl's source alone.
    """
    source = VERL / "trainer" / "sft_trainer.py"
    trainer_class = next(node for node in ast.parse(source.read_text()).body if getattr(node, "name", "") == "SFTTrainer")
    wanted = ("_build_config", "_validate_profiler_interval")
    methods = [node for node in trainer_class.body if getattr(node, "name", "") in wanted]
    part = ast.ClassDef(name="SFTTrainerConfig", bases=[], keywords=[], body=methods, decorator_list=[], type_params=[])
    namespace: dict[str, Any] = {}
    exec(compile(ast.fix_missing_locations(ast.Module([part], type_ignores=[])), str(source), "exec"), namespace)
    trainer = namespace["SFTTrainerConfig"]()
    trainer.config = config
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        trainer._build_config()
    assert [str(w.message) for w in caught] == []
    return trainer


def test_sft_recipe_composes_passes_verls_config_building_and_every_key_is_read(tmp_path):
    from torch.distributed.run import get_args_parser
    from verl.utils.device import auto_set_device

    base = str(embedded_checkpoint())
    [argv] = intercepted_argv(tmp_path, "verl/judge_sft.sh", {"DATA": "/data", "BASE": base}, "torchrun")["torchrun"]
    launch = get_args_parser().parse_args(argv)
    assert (launch.module, launch.training_script, launch.nproc_per_node, launch.standalone) == (
        True,
        "verl.trainer.sft_trainer",
        "8",
        True,
    )
    overrides = launch.training_script_args
    config = compose_trainer_config(*overrides, config_name="sft_trainer_engine")
    assert_every_override_is_read(config, overrides)
    auto_set_device(config)  # what sft_trainer.main does before run_sft
    trainer = sft_build_config(config)
    assert trainer.engine_config.strategy == "fsdp" and trainer.model_config.path == base
    assert (config.data.train_batch_size, config.optim.lr, config.trainer.total_epochs) == (64, 1e-5, 3)
    assert config.data.messages_key == "messages" and "hf_model" in config.checkpoint.save_contents
