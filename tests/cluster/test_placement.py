"""The judge pool beside verl on a simulated multi-node cluster: Ray's real scheduler, logical GPUs.

One ``ray.cluster_utils.Cluster`` for the module: two policy nodes of 8 GPUs and one judge
node of 8 GPUs carrying the ``cerm_judge`` resource, as ``recipes/verl/grpo_qwen3_8b_cerm.sh``
documents. verl's own ``ResourcePoolManager`` reserves its pools. Placement trials reserve
placement groups only (no processes), so they can be repeated; the trials that score go
through real replicas and a real ``vllm serve``. Every wait is bounded.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import subprocess
import sys
import time
import uuid

import pytest

ray = pytest.importorskip("ray")
pytest.importorskip("verl")

from ray.cluster_utils import Cluster  # noqa: E402
from ray.util.placement_group import placement_group_table, remove_placement_group  # noqa: E402

from cerm_reward.config import CermConfig  # noqa: E402
from cerm_reward.errors import ConfigError  # noqa: E402
from cerm_reward.serving import placement  # noqa: E402
from cerm_reward.serving.ray_pool import JudgePool, PoolConfig, PoolConflictError  # noqa: E402

pytestmark = pytest.mark.ray
TRIALS = 20
NODE_CPUS = 32  # verl's bundles ask for 3 CPUs (max_colocate_count) beside each GPU
VERL_WAIT_S = 30
HTTP_JUDGE = {"engine": {"kind": "http", "base_url": "http://127.0.0.1:9"}}  # never called by placement tests


@pytest.fixture(scope="module")
def cluster():
    simulated = Cluster(initialize_head=True, head_node_args={"num_cpus": 0, "num_gpus": 0, "include_dashboard": False})
    nodes = {
        "policy-a": simulated.add_node(num_cpus=NODE_CPUS, num_gpus=8),
        "policy-b": simulated.add_node(num_cpus=NODE_CPUS, num_gpus=8),
        "judge": simulated.add_node(num_cpus=NODE_CPUS, num_gpus=8, resources={"cerm_judge": 8}),
    }
    simulated.wait_for_nodes()
    ray.init(address=simulated.address, log_to_driver=False)
    yield {role: node.node_id for role, node in nodes.items()}
    ray.shutdown()
    simulated.shutdown()


def verl_pools(spec: dict[str, list[int]]) -> list:
    """verl's ResourcePoolManager + its STRICT_PACK placement groups, waited for at most VERL_WAIT_S."""
    from verl.single_controller.ray.base import ResourcePoolManager

    manager = ResourcePoolManager(resource_pool_spec=spec, mapping={})
    manager.create_resource_pool()
    with concurrent.futures.ThreadPoolExecutor(1) as executor:
        waits = [executor.submit(pool.get_placement_groups) for pool in manager.resource_pool_dict.values()]
        return [group for wait in waits for group in wait.result(timeout=VERL_WAIT_S)]


def nodes_of(group) -> list[str]:
    return list(placement_group_table(group)["bundles_to_node_id"].values())


def release(*groups) -> None:
    for group in groups:
        remove_placement_group(group)
    deadline = time.monotonic() + 10
    while ray.available_resources().get("GPU", 0) < 24 and time.monotonic() < deadline:
        time.sleep(0.05)


def test_recipe_layout_judge_reserved_first_keeps_its_node_in_every_trial(cluster):
    """8 replicas x {GPU: 1, cerm_judge: 1}, then verl's global_pool [8, 8]: the judge node is the judge's."""
    bundle = placement.bundle_of(1, 1, {"cerm_judge": 1})
    for trial in range(TRIALS):
        started = time.monotonic()
        judge = placement.reserve(f"recipe-{trial}", bundle, 8, "SPREAD", 10, detached=False)
        verl = verl_pools({"global_pool": [8, 8]})
        assert set(nodes_of(judge)) == {cluster["judge"]}
        assert {node for group in verl for node in nodes_of(group)} == {cluster["policy-a"], cluster["policy-b"]}
        assert time.monotonic() - started < VERL_WAIT_S
        release(judge, *verl)


def test_colocated_layout_judge_packed_first_leaves_verl_whole_nodes_in_every_trial(cluster):
    """4 replicas x {GPU: 1} packed on one node, then verl's [8, 8]: both fit, verl on the two other nodes."""
    bundle = placement.bundle_of(1, 1, {})
    for trial in range(TRIALS):
        judge = placement.reserve(f"colocated-{trial}", bundle, 4, "PACK", 10, detached=False)
        verl = verl_pools({"global_pool": [8, 8]})
        (judge_node,) = set(nodes_of(judge))
        assert judge_node not in {node for group in verl for node in nodes_of(group)}
        release(judge, *verl)


def test_a_judge_reserved_after_verl_took_its_gpus_fails_within_the_deadline_naming_them(cluster):
    verl = verl_pools({"global_pool": [8, 8, 8]})  # verl first, as a lazily created pool would find it
    started = time.monotonic()
    with pytest.raises(placement.PlacementTimeoutError, match=r"GPU: need 8, 0 free of 24") as error:
        placement.reserve("late", placement.bundle_of(1, 1, {"cerm_judge": 1}), 8, "SPREAD", 2, detached=False)
    assert time.monotonic() - started < 10 and "cerm_judge" not in str(error.value).split("missing")[1]
    release(*verl)


def test_a_vllm_replica_without_its_gpus_is_refused_before_anything_starts(cluster):
    vllm = CermConfig.model_validate({"engine": {"tensor_parallel_size": 2}})
    with pytest.raises(ConfigError, match="would see"):
        JudgePool.create(vllm, PoolConfig(name=f"zero-{uuid.uuid4().hex[:6]}", num_gpus=0))
    with pytest.raises(ConfigError, match="below engine.tensor_parallel_size=2"):
        JudgePool.create(vllm, PoolConfig(name=f"half-{uuid.uuid4().hex[:6]}", num_gpus=1))
    assert not [a for a in ray.util.list_named_actors(all_namespaces=True) if a["name"].startswith(("zero-", "half-"))]


def test_replicas_see_only_the_gpus_ray_assigned_and_land_on_the_judge_node(cluster):
    """One replica of 2 GPUs (2 of its node's 8) and one of none: two processes prove both rules."""
    config = CermConfig.model_validate(HTTP_JUDGE)
    pool = JudgePool.create(config, PoolConfig(name="devices", replicas=1, num_cpus=0.1, num_gpus=2, resources={"cerm_judge": 1}))
    zero = JudgePool.create(config, PoolConfig(name="no-gpu", replicas=1, num_cpus=0.1))
    try:
        probes = [handle.__ray_call__.remote(lambda self: _devices_and_node()) for handle in pool.handles + zero.handles]
        (gpus, node), (none, _) = ray.get(probes, timeout=60)
        assert len(set(gpus.split(","))) == 2 and all(gpus.split(","))  # Ray's two, not the node's eight
        assert node == cluster["judge"]
        assert none == ""  # a zero-GPU replica sees no GPU, not every GPU of its node
    finally:
        pool.shutdown()
        zero.shutdown()


def _devices_and_node() -> tuple[str, str]:
    import os

    return os.environ["CUDA_VISIBLE_DEVICES"], ray.get_runtime_context().get_node_id()


def test_a_second_creator_attaches_with_the_same_settings_and_is_refused_with_others(cluster):
    config = CermConfig.model_validate(HTTP_JUDGE)
    shape = PoolConfig(name=f"shared-{uuid.uuid4().hex[:6]}", replicas=2, num_cpus=0.1)
    first = JudgePool.create(config, shape)
    try:
        again = JudgePool.create(config, shape)
        assert [h._actor_id for h in again.handles] == [h._actor_id for h in first.handles]
        other = config.with_overrides({"judge.evaluation.max_tokens": 7})
        with pytest.raises(PoolConflictError, match=r"judge\.judge\.evaluation\.max_tokens: \d+ \(live\) vs 7 \(this creator\)"):
            JudgePool.create(other, shape)
        with pytest.raises(PoolConflictError, match=r"pool\.replicas: 2 \(live\) vs 3"):
            JudgePool.create(config, shape.model_copy(update={"replicas": 3}))
    finally:
        first.shutdown()


JOB_SCRIPT = """
import asyncio, json, sys, ray
from cerm_reward.integrations.verl.client import JudgeClient
from cerm_reward.integrations.verl.settings import VerlJudgeSettings, current_job_namespace
from cerm_reward.integrations.verl.tracking import drain_judge_metrics
from cerm_reward.serving.ray_pool import JudgePool
ray.init(address=sys.argv[1], log_to_driver=False)
settings = VerlJudgeSettings.model_validate({"engine": {"kind": "http", "base_url": "http://127.0.0.1:9"},
    "pool": {"num_cpus": 0.1, "startup_timeout_s": 120}, "experiment": "same-experiment"})
cerm = settings.cerm_config()
pool = JudgePool.create(cerm, settings.pool_config())
client = JudgeClient(settings, cerm, pool)
reward, extra = asyncio.run(client.judge("Is 2 even?", "Yes."))  # port 9 refuses: an engine failure, as data
assert extra["cerm_failed"] == 1.0, extra
ray.get(ray.get_actor(pool.config.name + "-metrics", namespace=current_job_namespace()).pending.remote())
metrics, _ = drain_judge_metrics()
print(json.dumps({"namespace": pool.config.namespace, "name": pool.config.name,
                  "actor": pool.handles[0]._actor_id.hex(), "samples": metrics.get("cerm/samples")}))
"""


def test_two_jobs_on_one_cluster_get_separate_pools_and_metrics(cluster):
    """Two drivers (two Ray jobs), the same experiment name: two pools, and each drains only its own metrics."""
    address = ray.get_runtime_context().gcs_address
    jobs = [
        subprocess.Popen([sys.executable, "-c", JOB_SCRIPT, address], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    outputs = [job.communicate(timeout=120) for job in jobs]
    assert [job.returncode for job in jobs] == [0, 0], [err[-2000:] for _, err in outputs]
    one, two = (json.loads(out.strip().splitlines()[-1]) for out, _ in outputs)
    assert one["name"] == two["name"] == "cerm-same-experiment"
    assert one["namespace"] != two["namespace"] and one["actor"] != two["actor"]
    assert one["samples"] == two["samples"] == 1  # each job's step sees its one record, not the other's


@pytest.mark.server
def test_recipe_layout_scores_a_batch_and_a_killed_replica_leaves_no_sample_without_one_result(cluster, vllm_server):
    """The recipe's pool shape (judge node, 1 GPU + cerm_judge per replica; 2 replicas here), real HTTP engine."""
    from cerm_reward.integrations.verl.client import client_for
    from cerm_reward.integrations.verl.settings import VerlJudgeSettings, current_job_namespace

    judge = {"criteria": {"max_tokens": 24}, "evaluation": {"max_tokens": 8}, "failure": {"max_resamples": 0}}
    pool_node = {"replicas": 2, "num_cpus": 0.1, "num_gpus": 1, "resources": {"cerm_judge": 1}, "placement_timeout_s": 30}
    pool_node["call_timeout_s"] = 120
    settings = VerlJudgeSettings.model_validate(
        {"engine": {"kind": "http", "base_url": vllm_server}, "judge": judge, "pool": pool_node, "experiment": "scored"}
    )
    client = client_for(settings)
    assert {r["node"] for r in asyncio.run(client.pool.ready())} == {cluster["judge"]}

    async def batch(prompts: int) -> list[tuple[float, dict]]:
        calls = [client.judge(f"Name a colour ({i}).", answer) for i in range(prompts) for answer in ("Red.", "", "Blue.")]
        return await asyncio.gather(*calls)

    async def batch_with_a_kill() -> list[tuple[float, dict]]:
        running = asyncio.ensure_future(batch(4))
        await asyncio.sleep(0.5)
        ray.kill(client.pool.handles[0], no_restart=False)  # dies mid-batch; Ray restarts it in its bundle
        return await running

    results = asyncio.run(batch_with_a_kill())
    assert len(results) == 12 and all(extra["cerm_failure_kind"] != "pool_unreachable" for _, extra in results)
    ray.kill(client.pool.handles[1], no_restart=True)  # gone for good: its samples are data, not exceptions
    lost = asyncio.run(batch(4))
    assert len(lost) == 12 and any(extra["cerm_failure_kind"] == "pool_unreachable" for _, extra in lost)
    assert all(reward == client.fallback for reward, extra in lost if extra["cerm_failure_kind"] == "pool_unreachable")
    collector = ray.get_actor(f"{client.pool.config.name}-metrics", namespace=current_job_namespace())
    deadline = time.monotonic() + 30
    while ray.get(collector.pending.remote(), timeout=10) < 24 and time.monotonic() < deadline:
        time.sleep(0.2)
    metrics, _ = ray.get(collector.drain.remote(), timeout=30)
    assert metrics["cerm/samples"] == 24  # one record per sample: none lost, none twice
    assert metrics["cerm/failure_rate/pool_unreachable"] > 0
    client.pool.shutdown()
