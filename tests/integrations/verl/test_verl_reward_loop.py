"""verl 0.9.1's own RewardLoopManager on a local Ray cluster, with the cerm manager and a real judge pool."""

import asyncio
import json
import os
import threading
import time
import uuid

import pytest

ray = pytest.importorskip("ray")
pytest.importorskip("verl")

from cerm_reward.engines.embedded import embedded_checkpoint  # noqa: E402
from cerm_reward.integrations.verl.batches import compose_trainer_config, grpo_batch  # noqa: E402
from cerm_reward.integrations.verl.extra_info import EXTRA_INFO_KEYS  # noqa: E402
from cerm_reward.integrations.verl.settings import current_job_namespace  # noqa: E402
from cerm_reward.serving.ray_pool import JudgePool  # noqa: E402

GROUPS = [
    ("What is the capital of France?", ["<think>France... Paris.</think>Paris.", "", "Lyon.", "<think>it could be"]),
    ("Name a prime number above 10.", ["11.", "12.", "13 is prime.", "Ten."]),
    ("Give one word that rhymes with cat.", ["Hat.", "Dog.", "Bat!", "mat"]),
]
JUDGE = [
    "reward.cerm.judge.criteria.max_tokens=48",
    "reward.cerm.judge.evaluation.max_tokens=24",
    "reward.cerm.judge.failure.max_resamples=0",
    "reward.cerm.judge.failure.repair=true",
]


def trainer_config(*overrides: str):
    """`reward=cerm` on cerm's own pool: verl's reward servers (the default) need GPUs; see tests/cluster for them."""
    return compose_trainer_config(
        "reward=cerm",
        "reward.reward_model.enable=False",
        "reward.num_workers=2",
        f"actor_rollout_ref.model.path={embedded_checkpoint()}",
        *overrides,
    )


def policy_tokenizer():
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(embedded_checkpoint()))


def collector(pool_name: str):
    return ray.get_actor(f"{pool_name}-metrics", namespace=current_job_namespace())


def wait_for_records(pool_name: str, expected: int) -> int:
    deadline = time.monotonic() + 30
    while (pending := ray.get(collector(pool_name).pending.remote())) < expected and time.monotonic() < deadline:
        time.sleep(0.2)
    return pending


def test_reward_loop_manager_scores_grpo_groups_with_one_criteria_generation_per_prompt(
    local_ray, vllm_server, tmp_path, monkeypatch
):
    """The replica's engine is the session's `vllm serve` (a replica hosting vLLM in-process is
    tests/serving/test_ray_pool.py's; a second engine start here would only add a minute)."""
    from verl.experimental.reward_loop import RewardLoopManager
    from verl.utils.tracking import Tracking

    pool_name = f"verl-{uuid.uuid4().hex[:6]}"
    engine = ["reward.cerm.engine.kind=http", f"reward.cerm.engine.base_url={vllm_server}", "reward.cerm.pool.num_cpus=0.1"]
    config = trainer_config(f"reward.cerm.pool.name={pool_name}", *engine, *JUDGE)
    data = grpo_batch(policy_tokenizer(), GROUPS)
    manager = RewardLoopManager(config)
    assert len(manager.reward_loop_workers) == 2  # 12 samples in 2 chunks of 6: the second group is split between them

    output = manager.compute_rm_score(data)

    assert output.meta_info["reward_extra_keys"] == list(EXTRA_INFO_KEYS)
    rewards = output.non_tensor_batch["cerm_score"]
    rm_scores = output.batch["rm_scores"]
    response_lengths = data.batch["attention_mask"][:, data.batch["prompts"].shape[1] :].sum(dim=1)
    for row, length in enumerate(response_lengths.tolist()):
        assert rm_scores[row, length - 1].item() == pytest.approx(float(rewards[row]))  # on the last response token
        rest = rm_scores[row].clone()
        rest[length - 1] = 0
        assert not rest.any()
    stats = asyncio.run(JudgePool.connect(pool_name, current_job_namespace()).stats())
    assert sum(s["criteria_generations"] for s in stats) == len(GROUPS)  # == unique prompts, not 12
    assert sum(s["responses"] for s in stats) == len(data)
    assert list(output.non_tensor_batch["cerm_empty_response"][:4]) == [0.0, 1.0, 0.0, 1.0]
    assert rewards[1] == rewards[3] == 0.0  # empty answers get judge.empty_response_score, not a crash
    assert list(output.non_tensor_batch["cerm_think_unclosed"][:4]) == [0.0, 0.0, 0.0, 1.0]
    assert set(output.non_tensor_batch["cerm_criteria_lookup"]) <= {"miss", "hit", "joined"}
    assert list(output.non_tensor_batch["cerm_criteria_lookup"]).count("miss") == len(GROUPS)

    # The step's judge metrics reach verl's own logger: its file backend (read back here) and W&B (offline).
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    monkeypatch.setenv("VERL_FILE_LOGGER_PATH", str(tmp_path / "metrics.jsonl"))
    assert wait_for_records(pool_name, len(data)) == len(data)
    tracking = Tracking("cerm-test", "reward-loop", default_backend=["file", "wandb"], config={"trainer": {}})
    try:
        tracking.log({"critic/score/mean": float(rewards.mean())}, step=1)
    finally:
        tracking.finish()
    [line] = (tmp_path / "metrics.jsonl").read_text().splitlines()
    logged = json.loads(line)["data"]
    assert logged["critic/score/mean"] == pytest.approx(float(rewards.mean()))  # verl's own numbers kept
    assert logged["cerm/samples"] == len(data) and logged["cerm/groups"] == len(GROUPS)
    assert logged["cerm/criteria_cache_hit_rate"] == pytest.approx(1 - len(GROUPS) / len(data))
    assert logged["cerm/score_mean"] == pytest.approx(float(rewards.mean()))
    for key in ("latency_p50_s", "latency_p95_s", "prompt_tokens", "completion_tokens", "group_score_std"):
        assert logged[f"cerm/{key}"] >= 0
    assert "cerm/zero_variance_group_frac" in logged and logged["cerm/failure_rate/invalid_input"] == 0
    [table] = (tmp_path / "wandb").glob("offline-run-*/files/media/table/cerm/examples_1_*.table.json")
    examples = json.loads(table.read_text())
    assert examples["columns"] == ["query", "criteria", "critique", "score", "failure"] and examples["data"]
    assert ray.get(collector(pool_name).pending.remote()) == 0  # drained once, by the step that logged it
    JudgePool.connect(pool_name, current_job_namespace()).shutdown()


@pytest.mark.server
def test_a_replica_killed_mid_batch_still_gives_every_sample_exactly_one_result(local_ray, vllm_server):
    from verl.experimental.reward_loop import RewardLoopManager

    pool_name = f"verl-{uuid.uuid4().hex[:6]}"
    engine = ["reward.cerm.engine.kind=http", f"reward.cerm.engine.base_url={vllm_server}", "reward.cerm.pool.num_cpus=0.1"]
    config = trainer_config(f"reward.cerm.pool.name={pool_name}", *engine, *JUDGE)
    groups = [(f"Name a colour you like ({i}).", ["Red.", "Blue.", "Green.", "I like grey."]) for i in range(4)]
    data = grpo_batch(policy_tokenizer(), groups)
    manager = RewardLoopManager(config)
    pool = JudgePool.connect(pool_name, current_job_namespace()) if _pool_exists(pool_name) else None
    results = {}
    thread = threading.Thread(target=lambda: results.setdefault("output", manager.compute_rm_score(data)))
    thread.start()
    while pool is None:
        time.sleep(0.2)
        pool = JudgePool.connect(pool_name, current_job_namespace()) if _pool_exists(pool_name) else None
    before = asyncio.run(pool.ready())[0]["pid"]
    time.sleep(1.0)
    ray.kill(pool.handles[0], no_restart=False)  # the replica's process dies while samples are in flight
    assert thread.is_alive()  # the batch was not finished when the replica died
    thread.join(300)
    output = results["output"]
    assert len(output) == len(data) and list(output.meta_info["reward_extra_keys"]) == list(EXTRA_INFO_KEYS)
    assert wait_for_records(pool_name, len(data)) == len(data)  # one record per sample: none lost, none twice
    assert asyncio.run(pool.ready())[0]["pid"] != before
    pool.shutdown()


def _pool_exists(pool_name: str) -> bool:
    try:
        ray.get_actor(f"{pool_name}-0", namespace=current_job_namespace())
        return True
    except ValueError:
        return False


def test_the_entry_point_registers_the_manager_in_a_fresh_ray_worker(local_ray):
    """A worker process that only imports verl (as verl's reward workers do) knows reward_manager.name=cerm."""
    source = (
        "def probe():\n"
        "    import os, sys\n"
        "    assert 'cerm_reward' not in sys.modules\n"
        "    import verl\n"
        "    from verl.experimental.reward_loop.reward_manager.registry import REWARD_MANAGER\n"
        "    cls = REWARD_MANAGER.get('cerm')\n"
        "    return os.getpid(), cls and f'{cls.__module__}.{cls.__name__}'\n"
    )
    namespace = {"__name__": "cerm_probe"}  # not importable: Ray ships the function by value
    exec(source, namespace)
    # Ray reuses idle workers of the same runtime env, and one an earlier test ran in has imported
    # cerm_reward already; a runtime env of its own forces a worker process started for this probe.
    fresh = {"env_vars": {"CERM_PROBE": uuid.uuid4().hex}}
    probe = ray.remote(max_calls=1, num_cpus=0, runtime_env=fresh)(namespace["probe"])
    pid, registered = ray.get(probe.remote(), timeout=120)
    assert pid != os.getpid()
    assert registered == "cerm_reward.integrations.verl.manager.CermRewardManager"


@pytest.mark.server
def test_compute_score_through_verls_naive_manager_and_in_router_mode(local_ray, vllm_server):
    """`custom_reward_function` = our async compute_score, the query taken from extra_info as prepare-data writes it."""
    import numpy as np
    from verl.experimental.reward_loop import RewardLoopManager

    from cerm_reward.integrations.verl.compute_score import compute_score

    pool_name = f"verl-{uuid.uuid4().hex[:6]}"
    cerm = f"{{pool: {{name: {pool_name}, num_cpus: 0.1}}, engine: {{kind: http, base_url: '{vllm_server}'}}, "
    cerm += "judge: {criteria: {max_tokens: 48}, evaluation: {max_tokens: 24}, failure: {max_resamples: 0, repair: true}}}"
    config = trainer_config(
        "reward.reward_manager.name=naive",
        "reward.custom_reward_function.path=pkg://cerm_reward.integrations.verl.compute_score",
        f"+reward.custom_reward_function.reward_kwargs.cerm={cerm}",
    )
    groups = GROUPS[1:]
    data = grpo_batch(policy_tokenizer(), groups)
    chats = list(data.non_tensor_batch["raw_prompt"])
    data.non_tensor_batch["data_source"] = np.array(["prompts"] * len(data), dtype=object)
    data.non_tensor_batch["reward_model"] = np.array([{"style": "model", "ground_truth": ""}] * len(data), dtype=object)
    data.non_tensor_batch["extra_info"] = np.array([{"prompt": chat, "index": i} for i, chat in enumerate(chats)], dtype=object)
    # The pool is owned by the reward worker that created it, so the manager (and its workers) must outlive the read.
    manager = RewardLoopManager(config)
    output = manager.compute_rm_score(data)
    assert output.meta_info["reward_extra_keys"] == ["score", *EXTRA_INFO_KEYS]  # same fixed keys, plus verl's score
    stats = asyncio.run(JudgePool.connect(pool_name, current_job_namespace()).stats())
    assert sum(s["criteria_generations"] for s in stats) == len(groups)
    JudgePool.connect(pool_name, current_job_namespace()).shutdown()
    del manager

    # verl hosting the judge itself passes reward_router_address ("host:port"): the pool then talks to that router.
    router = vllm_server.removeprefix("http://")
    settings = {
        "pool": {"name": f"router-{uuid.uuid4().hex[:6]}", "num_cpus": 0.1},
        "judge": {"criteria": {"max_tokens": 48}, "evaluation": {"max_tokens": 24}},
        "metrics": {"enable": False},
    }
    result = asyncio.run(
        compute_score("prompts", "Paris.", "", {"prompt": GROUPS[0][0]}, reward_router_address=router, cerm=settings)
    )
    assert set(result) == {"score", *EXTRA_INFO_KEYS} and result["cerm_criteria_lookup"] == "miss"
    with pytest.raises(KeyError, match="prepare-data"):
        asyncio.run(compute_score("prompts", "Paris.", "", {}, reward_router_address=router, cerm=settings))
    JudgePool.connect(settings["pool"]["name"], current_job_namespace()).shutdown()


@pytest.mark.server
def test_reward_critic_rm_scores_grpo_groups_through_the_same_manager_and_pool(local_ray, vllm_server, checkpoint):
    """`reward=critic_rm`: verl's RewardLoopManager, our manager and pool, the Critic-RM judge (head in each replica)."""
    from verl.experimental.reward_loop import RewardLoopManager

    pool_name = f"critic-{uuid.uuid4().hex[:6]}"
    config = compose_trainer_config(
        "reward=critic_rm",
        "reward.num_workers=2",
        f"actor_rollout_ref.model.path={embedded_checkpoint()}",
        f"reward.cerm.judge.checkpoint={checkpoint}",
        "reward.cerm.judge.critique.max_tokens=24",
        "reward.cerm.engine.kind=http",
        f"reward.cerm.engine.base_url='{vllm_server}'",
        f"reward.cerm.pool.name={pool_name}",
        "reward.cerm.pool.num_cpus=0.1",
    )
    groups = GROUPS[1:]
    data = grpo_batch(policy_tokenizer(), groups)
    manager = RewardLoopManager(config)
    output = manager.compute_rm_score(data)

    assert output.meta_info["reward_extra_keys"] == list(EXTRA_INFO_KEYS)  # the same fixed keys as CE-RM
    rewards = output.non_tensor_batch["cerm_score"]
    assert not output.non_tensor_batch["cerm_failed"].any() and len(set(rewards.tolist())) > 1  # head scores, not fallbacks
    assert set(output.non_tensor_batch["cerm_criteria_lookup"]) == {"none"}
    response_lengths = data.batch["attention_mask"][:, data.batch["prompts"].shape[1] :].sum(dim=1)
    for row, length in enumerate(response_lengths.tolist()):
        assert output.batch["rm_scores"][row, length - 1].item() == pytest.approx(float(rewards[row]))
    pool = JudgePool.connect(pool_name, current_job_namespace())
    stats = asyncio.run(pool.stats())
    assert sum(s["responses"] for s in stats) == len(data) and sum(s["criteria_generations"] for s in stats) == 0
    assert {r["judge"]["kind"] for r in asyncio.run(pool.ready())} == {"critic_rm"}
    assert wait_for_records(pool_name, len(data)) == len(data)
    metrics, examples = ray.get(collector(pool_name).drain.remote())
    assert metrics["cerm/samples"] == len(data) and metrics["cerm/failure_rate"] == 0.0
    assert metrics["cerm/score_mean"] == pytest.approx(float(rewards.mean()))
    assert "cerm/criteria_cache_hit_rate" not in metrics and examples and not examples[0]["criteria"]  # none written
    pool.shutdown()
