"""Integration overhead: the same groups through our HTTP server and verl's reward loop vs direct calls."""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import Sequence
from pathlib import Path

import httpx
import yaml

from cerm_reward.bench.figures import Figure, at_least, reported, skipped
from cerm_reward.bench.timing import alternate
from cerm_reward.bench.workload import BenchGroup, response_count, score_groups
from cerm_reward.config import CermConfig
from cerm_reward.judges.cerm.judge import CermJudge
from cerm_reward.serving.ray_pool import JudgePool


async def http_vs_in_process(judge: CermJudge, groups: Sequence[BenchGroup], repeats: int) -> list[Figure]:
    """``POST /v1/score_group`` per group on loopback vs ``judge.score_group``, one judge behind both.

    The server runs on this process's event loop with the client, so the figure also charges
    the client's work to the server: a conservative measure of what a remote trainer sees.
    """
    import uvicorn

    from cerm_reward.serving.backend import LocalBackend
    from cerm_reward.serving.http_server import ServerSettings, create_app

    app = create_app(CermConfig(), ServerSettings(), backend=LocalBackend(judge))
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="on"))
    serving = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.05)
    port = server.servers[0].sockets[0].getsockname()[1]
    responses = response_count(groups)
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=600) as client:

            async def over_http() -> None:
                async def post(group: BenchGroup) -> None:
                    reply = await client.post("/v1/score_group", json={"query": group.query, "responses": group.responses})
                    reply.raise_for_status()

                await asyncio.gather(*(post(group) for group in groups))

            times = await alternate(
                {"in-process": lambda: score_groups(judge, groups), "http": over_http}, repeats, judge.reset_caches
            )
    finally:
        server.should_exit = True
        await serving
    return [
        at_least(
            "integration",
            "HTTP server / in-process throughput",
            times["in-process"] / times["http"],
            0.95,
            "",
            f"{responses / times['http']:.2f} vs {responses / times['in-process']:.2f} resp/s, median of {repeats}",
        )
    ]


async def verl_vs_direct(pool, pool_name: str, groups: Sequence[BenchGroup], repeats: int) -> list[Figure]:
    """verl's ``RewardLoopManager`` with our manager (per-sample calls from its reward workers) vs
    ``pool.score_group`` per group, on the same pool and the same response texts.

    verl's reward workers attach to the bench's pool only with the very settings it runs with
    (a creator with others is refused), so they get the live pool's judge config as
    ``reward.cerm.config`` and its namespace.
    """
    try:
        from verl.experimental.reward_loop import RewardLoopManager
    except ImportError as error:
        return [skipped("integration", "verl reward loop / direct throughput", f"verl not importable ({error})")]
    from transformers import AutoTokenizer

    from cerm_reward.engines.embedded import embedded_checkpoint
    from cerm_reward.integrations.verl.batches import compose_trainer_config, grpo_batch

    policy = str(embedded_checkpoint())  # only its tokenizer is used: it lays out the batch as a policy would
    tokenizer = AutoTokenizer.from_pretrained(policy)
    live = JudgePool.live_settings(pool_name, pool.config.namespace)
    judge_file = Path(tempfile.mkdtemp(prefix="cerm-bench-")) / "judge.yaml"
    judge_file.write_text(yaml.safe_dump(live["judge"]), encoding="utf-8")
    config = compose_trainer_config(
        "reward=cerm",
        "reward.reward_model.enable=False",  # the bench's own pool, not verl's reward servers (which need GPUs)
        "reward.num_workers=2",
        f"actor_rollout_ref.model.path={policy}",
        f"reward.cerm.config={judge_file}",
        f"reward.cerm.pool.name={pool_name}",
        f"reward.cerm.pool.namespace={pool.config.namespace}",
        "reward.cerm.metrics.enable=false",
    )
    batch = grpo_batch(tokenizer, [(group.query, group.responses) for group in groups], prompt_length=512, response_length=512)
    # The texts verl's manager will judge: the responses decoded back from their token ids.
    decoded = iter(tokenizer.batch_decode(batch.batch["responses"], skip_special_tokens=True))
    same_texts = [BenchGroup(group.query, [next(decoded) for _ in group.responses]) for group in groups]
    manager = RewardLoopManager(config)
    responses = len(batch)

    async def through_verl() -> None:
        await asyncio.get_running_loop().run_in_executor(None, manager.compute_rm_score, batch)

    async def direct() -> None:
        await asyncio.gather(*(pool.score_group([{"role": "user", "content": g.query}], g.responses) for g in same_texts))

    times = await alternate({"direct": direct, "verl": through_verl}, repeats, pool.reset_caches)
    return [
        reported("integration", "verl reward loop", responses / times["verl"], "resp/s", "2 reward_loop_worker actors"),
        at_least(
            "integration",
            "verl reward loop / direct pool throughput",
            times["direct"] / times["verl"],
            0.95,
            "",
            f"direct {responses / times['direct']:.2f} resp/s, median of {repeats}",
        ),
    ]
