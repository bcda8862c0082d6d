"""The config switch on verl 0.9.1's real Hydra config: `reward=cerm`, `+reward_model=cerm`, `reward_model=cerm`,
and `reward=critic_rm` for the Critic-RM judge."""

import subprocess
import sys

import pytest
import yaml

pytest.importorskip("verl")


from cerm_reward.errors import ConfigError  # noqa: E402
from cerm_reward.integrations.verl.batches import compose_trainer_config  # noqa: E402
from cerm_reward.integrations.verl.main_ppo import RewardSwitchError, check_reward_switch, self_placed_judge  # noqa: E402
from cerm_reward.integrations.verl.settings import VerlJudgeSettings, job_namespace  # noqa: E402


def cfg_job(module: str, *overrides: str) -> dict:
    """`python -m <module> <overrides> --cfg job`: the config verl would run with, as YAML."""
    done = subprocess.run([sys.executable, "-m", module, *overrides, "--cfg", "job"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return yaml.safe_load(done.stdout[done.stdout.index("actor_rollout_ref:") :])


@pytest.mark.parametrize(
    ("config_name", "switch"),
    [("ppo_trainer", "reward=cerm"), ("ppo_trainer", "+reward_model=cerm"), ("cerm_ppo_trainer", "reward_model=cerm")],
)
def test_each_switch_form_selects_the_cerm_reward_group(config_name, switch):
    """Composed in this process through Hydra with our search-path plugin, as verl's main composes it;
    the `python -m` entry points themselves run in the `--cfg job` tests below."""
    config = compose_trainer_config(switch, "reward.cerm.pool.replicas=2", config_name=config_name)
    reward = config.reward
    assert reward.reward_manager.name == "cerm" and reward.reward_manager.source == "register"
    assert reward.num_workers == 8 and reward.reward_model.enable is True  # verl's keys kept; verl hosts the judge
    settings = VerlJudgeSettings.from_trainer_config(config)
    assert settings.pool.replicas == 2 and settings.policy_output.strip_think
    assert settings.pool.name is None and settings.pool.namespace is None  # the job's own, resolved at start-up


@pytest.mark.slow  # a subprocess that imports verl's trainer to compose its config: 10 to 40 s on two cores
def test_our_entry_point_takes_the_literal_switch_and_prints_verls_keys_resolved_from_the_judges():
    """`--cfg job --resolve` resolves in the driver: the Hydra plugin registered our resolvers there."""
    job = cfg_job(
        "cerm_reward.integrations.verl.main_ppo", "reward_model=cerm", "reward.cerm.engine.tensor_parallel_size=2", "--resolve"
    )
    reward_model = job["reward"]["reward_model"]
    assert job["reward"]["reward_manager"]["name"] == "cerm" and reward_model["enable"] is True
    assert reward_model["model_path"] == "PKU-ONELab/CE-RM-4B" and reward_model["rollout"]["tensor_model_parallel_size"] == 2
    assert reward_model["rollout"]["free_cache_engine"] is True  # colocated: verl sleeps it between reward steps


@pytest.mark.slow  # a subprocess that imports verl's trainer to compose its config: 10 to 40 s on two cores
def test_literal_reward_model_switch_on_stock_main_ppo_is_refused_by_hydra_with_the_plugin():
    done = subprocess.run(
        [sys.executable, "-m", "verl.trainer.main_ppo", "reward_model=cerm", "--cfg", "job"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode != 0 and "+reward_model=cerm" in done.stderr  # loud, not silent


@pytest.mark.parametrize(
    "overrides",
    [
        ["reward=cerm"],
        [
            "reward=cerm",
            "reward.reward_manager.source=importlib",
            "reward.reward_manager.name=CermRewardManager",
            "reward.reward_manager.module.path=pkg://cerm_reward.integrations.verl.manager",
        ],
    ],
    ids=["register", "importlib"],
)
def test_verl_resolves_the_cerm_manager_from_the_composed_config(overrides):
    from verl.trainer.ppo.reward import resolve_reward_manager_cls

    from cerm_reward.integrations.verl.manager import CermRewardManager

    config = compose_trainer_config(*overrides)
    assert resolve_reward_manager_cls(config) is CermRewardManager
    check_reward_switch(config)


def test_a_swallowed_reward_model_switch_is_caught_by_our_entry_point(monkeypatch):
    """Without our search-path plugin, verl's stock config turns `reward_model=cerm` into a string, silently."""
    from hydra_plugins.cerm_reward import CermRewardSearchPathPlugin

    monkeypatch.setattr(CermRewardSearchPathPlugin, "manipulate_search_path", lambda self, search_path: None)
    config = compose_trainer_config("reward_model=cerm")
    assert config.reward_model == "cerm" and config.reward.reward_manager.name == "naive"  # verl would train on naive
    with pytest.raises(RewardSwitchError, match="was not applied"):
        check_reward_switch(config)


@pytest.mark.parametrize("switch", ["reward=critic_rm", "+reward_model=critic_rm"])
def test_the_critic_rm_switch_keeps_the_manager_and_pool_and_selects_the_critic_judge(switch, tmp_path):
    from verl.trainer.ppo.reward import resolve_reward_manager_cls

    from cerm_reward.config import CriticJudgeConfig
    from cerm_reward.integrations.verl.manager import CermRewardManager

    checkpoint = f"reward.cerm.judge.checkpoint={tmp_path}"
    config = compose_trainer_config(switch, checkpoint, "reward.cerm.judge.critiques_per_response=4")
    assert resolve_reward_manager_cls(config) is CermRewardManager
    check_reward_switch(config)
    settings = VerlJudgeSettings.from_trainer_config(config)
    cerm = settings.cerm_config()
    assert isinstance(cerm.judge, CriticJudgeConfig) and cerm.judge.critiques_per_response == 4
    assert cerm.judge.checkpoint == str(tmp_path) and cerm.judge_engine.model == str(tmp_path)  # its own critic
    assert cerm.judge.critique.max_tokens == 1024  # null in the group = the default
    routed = settings.cerm_config(reward_router_address="10.0.0.1:8000", router_model="critic")
    assert routed.judge_engine.kind == "http" and isinstance(routed.judge, CriticJudgeConfig)  # verl hosts the critic
    with pytest.raises(ValueError, match="judge.checkpoint is required"):
        VerlJudgeSettings.from_trainer_config(compose_trainer_config(switch)).cerm_config()
    with pytest.raises(ConfigError, match="judge.criteria"):  # a CE-RM key under critic_rm names itself
        VerlJudgeSettings.from_trainer_config(
            compose_trainer_config(switch, checkpoint, "reward.cerm.judge.criteria.max_tokens=8")
        ).cerm_config()


def test_pool_name_and_namespace_come_from_the_job_unless_set():
    settings = VerlJudgeSettings.from_trainer_config(compose_trainer_config("reward=cerm", "trainer.experiment_name=run a/1"))
    one, two = settings.pool_config(job_namespace("01000000")), settings.pool_config(job_namespace("02000000"))
    assert one.name == two.name == "cerm-run-a-1" and one.namespace != two.namespace  # two jobs, two pools
    detached = settings.model_copy(update={"pool": settings.pool.model_copy(update={"detached": True})})
    assert detached.pool_config(job_namespace("01000000")).namespace == "cerm_reward"  # the next run finds it
    named = VerlJudgeSettings.from_node({"pool": {"name": "shared", "namespace": "team"}})
    assert (named.pool_config("ignored").name, named.pool_config("ignored").namespace) == ("shared", "team")
    assert VerlJudgeSettings.from_node(None).pool_config("ns").name == "cerm-judge"  # compute_score: no trainer config
    assert not self_placed_judge(compose_trainer_config("reward=cerm"))  # CPU/http judge: nothing to reserve
    assert not self_placed_judge(
        compose_trainer_config("reward=cerm", "reward.cerm.pool.num_gpus=1", "reward.reward_model.enable=true")
    )


def test_unknown_cerm_keys_fail_with_their_name():
    with pytest.raises(ValueError, match="replica"):
        VerlJudgeSettings.model_validate({"pool": {"replica": 2}})


def test_verl_hosting_the_judge_reads_the_judge_model_and_our_manager_from_the_keys_it_reads():
    """`reward=cerm` + verl's reward pool: the model set once as cerm.engine.model reaches verl's reward model,
    and the non-null custom function path keeps verl from treating the judge as a classifier."""
    from verl.utils.config import omega_conf_to_dataclass

    config = compose_trainer_config(
        "reward=cerm",
        "reward.cerm.engine.model=PKU-ONELab/CE-RM-4B",
        "reward.reward_model.enable=True",
        "reward.reward_model.enable_resource_pool=True",
        "reward.reward_model.nnodes=1",
        "reward.reward_model.n_gpus_per_node=2",
        "reward.reward_model.rollout.tensor_model_parallel_size=2",
    )
    reward_model = omega_conf_to_dataclass(config.reward.reward_model)  # verl's own dataclass, as its trainer builds it
    assert reward_model.model_path == "PKU-ONELab/CE-RM-4B" and reward_model.rollout.name == "vllm"
    assert reward_model.rollout.tensor_model_parallel_size == 2 and reward_model.enable_resource_pool
    assert config.reward.custom_reward_function.path == "pkg://cerm_reward.integrations.verl.compute_score"
    assert config.reward.reward_manager.name == "cerm" and not self_placed_judge(config)

    default = omega_conf_to_dataclass(compose_trainer_config("reward=cerm").reward.reward_model)
    assert default.enable and not default.enable_resource_pool and default.model_path == "PKU-ONELab/CE-RM-4B"
    assert default.rollout.tensor_model_parallel_size == 1 and default.rollout.gpu_memory_utilization == 0.5
    assert default.rollout.free_cache_engine  # colocated with the policy: verl wakes it for each reward step only
    own_pool = compose_trainer_config("reward=cerm", "reward.reward_model.enable=False")
    assert own_pool.reward.reward_model.enable is False and own_pool.reward.reward_manager.name == "cerm"


def test_a_judge_server_or_model_of_ones_own_is_refused_when_verl_hosts_the_judge(tmp_path):
    hosted = {"reward_router_address": "10.0.0.9:80", "router_model": "PKU-ONELab/CE-RM-4B"}
    with pytest.raises(ConfigError, match=r"engine.base_url names a judge server of your own.*enable=False"):
        VerlJudgeSettings.from_node({"engine": {"base_url": "http://judge:8000"}}).cerm_config(**hosted)
    judge_file = tmp_path / "judge.yaml"
    judge_file.write_text("engine:\n  model: Qwen/Qwen3-4B\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"'Qwen/Qwen3-4B' in reward.cerm but verl's reward servers load 'PKU-ONELab/CE-RM-4B'"):
        VerlJudgeSettings.from_node({"config": str(judge_file)}).cerm_config(**hosted)
    assert VerlJudgeSettings().cerm_config(**hosted).engine.model is None  # the one model verl's servers list
