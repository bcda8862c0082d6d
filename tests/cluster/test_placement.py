"""The judge pool beside verl on a simulated multi-node cluster: Ray's real scheduler, logical GPUs.

One ``ray.cluster_utils.Cluster`` for the module: three nodes of 8 GPUs, the third carrying the
``cerm_judge`` resource, as the verl recipes document (``grpo_qwen3_8b_cerm.sh``: verl reserves the
judge's reward pool with its own; ``grpo_qwen3_8b_cerm_judge_nodes.sh``: judge nodes outside verl).
verl's own ``ResourcePoolManager`` reserves its pools. Placement trials reserve
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
    if ray.is_initialized():  # the session's local cluster (tests/conftest.py starts it again when needed)
        ray.shutdown()
    ray.init(address=simulated.address, log_to_driver=False)
    yield {role: node.node_id for role, node in nodes.items()}
    ray.shutdown()
    simulated.shutdown()


def verl_manager(spec: dict[str, list[int]]):
    """verl's ResourcePoolManager with its pools created (placement groups reserved when first asked for)."""
    from verl.single_controller.ray.base import ResourcePoolManager

    manager = ResourcePoolManager(resource_pool_spec=spec, mapping={})
    manager.create_resource_pool()
    return manager


def placed(*pools) -> list:
    """The pools' STRICT_PACK placement groups, waited for at most VERL_WAIT_S."""
    with concurrent.futures.ThreadPoolExecutor(1) as executor:
        waits = [executor.submit(pool.get_placement_groups) for pool in pools]
        return [group for wait in waits for group in wait.result(timeout=VERL_WAIT_S)]


def verl_pools(spec: dict[str, list[int]]) -> list:
    return placed(*verl_manager(spec).resource_pool_dict.values())


def nodes_of(group) -> list[str]:
    return list(placement_group_table(group)["bundles_to_node_id"].values())


def release(*groups) -> None:
    for group in groups:
        remove_placement_group(group)
    all_gpus_free()


def all_gpus_free() -> None:
    """Wait (at most 30 s) until every GPU is back: actors an earlier test killed free theirs asynchronously,
    and verl refuses to create pools larger than what is free at that moment."""
    deadline = time.monotonic() + 30
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
    all_gpus_free()
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


def test_default_layout_verl_reserves_the_judges_reward_pool_with_the_policy_pools_in_every_trial(cluster):
    """`reward=cerm` as grpo_qwen3_8b_cerm.sh runs it: verl's global_pool [8, 8] and reward_pool [8] at once."""
    all_gpus_free()  # verl refuses pools larger than what is free when it creates them
    for trial in range(TRIALS):
        started = time.monotonic()
        manager = verl_manager({"global_pool": [8, 8], "reward_pool": [8]})
        policy, judge = (placed(manager.resource_pool_dict[name]) for name in ("global_pool", "reward_pool"))
        policy_nodes = {node for group in policy for node in nodes_of(group)}
        judge_nodes = {node for group in judge for node in nodes_of(group)}
        assert len(policy_nodes) == 2 and len(judge_nodes) == 1 and not policy_nodes & judge_nodes, trial
        assert time.monotonic() - started < VERL_WAIT_S
        release(*policy, *judge)


def test_colocated_default_gives_verl_one_judge_server_per_tensor_parallel_group_of_the_policy_gpus(cluster):
    """`reward=cerm` with no reward pool of its own: verl's reward model splits global_pool by the judge's TP."""
    from verl.single_controller.ray.base import split_resource_pool

    from cerm_reward.integrations.verl.batches import compose_trainer_config

    overrides = ("reward=cerm", "trainer.nnodes=3", "trainer.n_gpus_per_node=8", "reward.cerm.engine.tensor_parallel_size=2")
    config = compose_trainer_config(*overrides)
    tp = config.reward.reward_model.rollout.tensor_model_parallel_size
    all_gpus_free()
    manager = verl_manager({"global_pool": [config.trainer.n_gpus_per_node] * config.trainer.nnodes})
    pool = manager.resource_pool_dict["global_pool"]
    groups = placed(pool)
    assert tp == 2 and len(split_resource_pool(pool, split_size=tp)) == 12  # RewardModelManager's replicas: 24 GPUs / TP
    assert config.reward.reward_model.rollout.free_cache_engine  # asleep while the policy generates and trains
    release(*groups)


class StandInRewardServer:
    """Stands in for verl's vLLM reward-server actor, which needs GPUs: named as verl names it, it answers
    ``get_server_address`` and forwards HTTP to the session's real ``vllm serve``, noting the query (the
    first user turn) of every chat completion it carries."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.queries: list[str] = []
        self.port = 0

    async def start(self) -> None:
        from aiohttp import ClientSession, web

        self.session = ClientSession()
        app = web.Application()
        app.router.add_route("*", "/{path:.*}", self.forward)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", 0).start()
        self.port = self.runner.addresses[0][1]

    async def forward(self, request):
        from aiohttp import web

        body = await request.read()
        if request.path.endswith("/chat/completions"):
            messages = json.loads(body)["messages"]
            self.queries.append(next(message["content"] for message in messages if message["role"] == "user"))
        headers = {"Content-Type": request.headers.get("Content-Type", "application/json")}
        async with self.session.request(request.method, self.upstream + request.path_qs, data=body, headers=headers) as reply:
            return web.Response(body=await reply.read(), status=reply.status, content_type=reply.content_type)

    async def get_server_address(self) -> tuple[str, int]:
        return "127.0.0.1", self.port

    async def served(self) -> list[str]:
        return list(self.queries)


@pytest.mark.server
def test_default_mode_scores_a_grpo_batch_on_verls_reward_servers_each_prompt_on_one_server(cluster, vllm_server):
    """verl's pools with the judge's reward_pool, two reward servers in it (stand-ins in front of a real
    `vllm serve`), verl's own RewardLoopWorker actors with our manager: one criteria generation per
    prompt, and every call of a prompt on one server. verl's router address refuses connections
    (port 9): the judge never goes through it."""
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy
    from transformers import AutoTokenizer
    from verl.experimental.reward_loop.reward_loop import RewardLoopWorker

    from cerm_reward.engines.embedded import embedded_checkpoint
    from cerm_reward.integrations.verl.batches import compose_trainer_config, grpo_batch
    from cerm_reward.integrations.verl.settings import current_job_namespace

    all_gpus_free()
    manager = verl_manager({"global_pool": [8, 8], "reward_pool": [2]})
    policy, (judge_group,) = (placed(manager.resource_pool_dict[name]) for name in ("global_pool", "reward_pool"))
    (judge_node,) = set(nodes_of(judge_group))
    on_judge_node = NodeAffinitySchedulingStrategy(judge_node, soft=False)
    servers = [
        ray.remote(StandInRewardServer)
        .options(name=f"vllm_server_reward_{replica}_0", num_cpus=0, scheduling_strategy=on_judge_node)
        .remote(vllm_server)
        for replica in range(2)
    ]
    ray.get([server.start.remote() for server in servers], timeout=30)
    judge = str(embedded_checkpoint())
    experiment = f"default-{uuid.uuid4().hex[:6]}"
    config = compose_trainer_config(
        "reward=cerm",
        "reward.num_workers=2",
        "reward.reward_model.enable_resource_pool=True",
        "reward.reward_model.nnodes=1",
        "reward.reward_model.n_gpus_per_node=2",
        f"reward.cerm.engine.model={judge}",  # verl's reward_model.model_path follows it (its tokenizer is loaded)
        "reward.cerm.pool.num_cpus=0.1",
        "reward.cerm.judge.criteria.max_tokens=24",
        "reward.cerm.judge.evaluation.max_tokens=8",
        "reward.cerm.judge.failure.max_resamples=0",
        f"actor_rollout_ref.model.path={judge}",
        f"trainer.experiment_name={experiment}",
    )
    prompts = [f"Name a colour that starts with the letter {letter}." for letter in "BGRYP"]
    groups = [(prompt, ["Blue.", "", "Green.", "Red."]) for prompt in prompts]
    data = grpo_batch(AutoTokenizer.from_pretrained(judge), groups)
    workers = [ray.remote(RewardLoopWorker).options(num_cpus=0.1).remote(config, "127.0.0.1:9") for _ in range(2)]
    try:
        chunks = data.chunk(2)  # as RewardLoopManager.compute_rm_score splits a batch: groups cut across workers
        results = ray.get([w.compute_score_batch.remote(c) for w, c in zip(workers, chunks, strict=True)], timeout=300)
        outputs = [output for chunk in results for output in chunk]
        served = ray.get([server.served.remote() for server in servers], timeout=30)
        pool = JudgePool.connect(f"cerm-{experiment}", current_job_namespace())
        stats = asyncio.run(pool.stats())
    finally:
        for actor in (*workers, *servers):
            ray.kill(actor)
        release(*policy, judge_group)
    assert len(outputs) == len(data)
    kinds = {output["reward_extra_info"]["cerm_failure_kind"] for output in outputs}
    assert not kinds & {"pool_unreachable", "engine_error"}, kinds
    home: dict[str, int] = {}
    for index, queries in enumerate(served):
        for query in queries:
            assert home.setdefault(query, index) == index, f"{query[:60]!r} reached two servers"
    assert len(home) == len(prompts) and set(home.values()) == {0, 1}  # each prompt on one server, both servers used
    assert sum(replica["criteria_generations"] for replica in stats) == len(prompts)
    pool.shutdown()
