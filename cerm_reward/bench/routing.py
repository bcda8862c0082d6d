"""Prefix-aware routing over several judge servers, and verl's default mode against direct calls.

verl's default mode hosts the judge on its own vLLM reward servers behind a least-loaded router.
A CE-RM group's evaluation prompts all open with the same conversation (criteria prompt with the
query, then the criteria), so they hit vLLM's prefix cache only on the server that computed that
opening. Our engine sends a query's criteria turn and all its evaluations to one server (a hash
of the query, :mod:`cerm_reward.engines.routed`); verl's router sends each call to the server
with the fewest calls in flight. This section measures both on the same ``vllm serve`` processes.

**Hit share of shared-prefix tokens.** A group's *shared prefix* is the opening that every one of
its evaluation prompts repeats: the common token prefix of the group's evaluation prompts,
rendered with the judge model's chat template (criteria-turn message, the criteria, and the
evaluation prompt up to the response). The share is the prefix-cache hit tokens of the servers
during the group's evaluations (``vllm:prefix_cache_hits_total`` on each server's ``/metrics``)
divided by evaluations x shared-prefix tokens, summed over the groups. The criteria turns run
first, all of them, and the counters are read between the two phases, so only evaluation hits
are counted; the criteria turn's own cached blocks count when an evaluation finds them, which is
what routing is for. Hits can only cover a prompt's opening (vLLM chains block hashes), so an
evaluation's hits beyond its group's shared prefix need two responses of the group that open
alike. vLLM caches whole blocks (128 tokens on the CPU build), so even one server serving
everything stays a little under 1.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import tempfile
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import Any

import httpx
import yaml

from cerm_reward.bench.criteria import common_prefix_length
from cerm_reward.bench.figures import Figure, at_least, reported
from cerm_reward.bench.servers import ServerSettings, vllm_servers
from cerm_reward.bench.timing import alternate
from cerm_reward.bench.workload import BenchGroup, response_count, score_groups
from cerm_reward.config import CermJudgeConfig, EngineConfig
from cerm_reward.engines.base import Engine
from cerm_reward.errors import CermError
from cerm_reward.judges.cerm.judge import CermJudge
from cerm_reward.judges.queries import render_query
from cerm_reward.results import Criteria

SECTION = "routing"
SERVER_COUNTS = (2, 4)
"""The issue's server counts; the servers are started once, each count uses the first S of them."""
HITS = "vllm:prefix_cache_hits_total"
REWARD_WORKERS = 2
TIMED_RUNS = 3
"""The issue's median of 3 for the verl figure (``--repeats`` may ask for more)."""
_SETTLE_S = 0.25


def counter_total(metrics: str, name: str) -> float:
    """A Prometheus counter summed over its label sets (one per engine of a server); 0 when absent."""
    total = 0.0
    for line in metrics.splitlines():
        if line.startswith("#") or not line.strip():
            continue
        sample, _, value = line.rpartition(" ")
        if sample.split("{", 1)[0] == name:
            total += float(value)
    return total


def shared_prefix_tokens(prompts_by_group: Sequence[Sequence[Sequence[int]]]) -> int:
    """Evaluations x shared-prefix tokens, summed over groups: the hits a perfect cache would give."""
    return sum(len(prompts) * common_prefix_length(prompts) for prompts in prompts_by_group)


def hit_share(hit_tokens: float, shared_tokens: int) -> float:
    return hit_tokens / shared_tokens


class StandInRewardServer:
    """Stands in for verl's GPU-only ``vllm_server_reward_<replica>_0`` actor: only its name and address.

    verl's actor owns a vLLM server on the reward pool's GPUs; here the server is a ``vllm serve``
    on loopback, and this actor only tells where it is, which is all the judge asks of it.
    """

    def __init__(self, host: str, port: int) -> None:
        self.address = (host, port)

    def get_server_address(self) -> tuple[str, int]:
        return self.address


async def routing(
    model: str,
    judge_config: CermJudgeConfig,
    groups: Sequence[BenchGroup],
    *,
    max_model_len: int,
    repeats: int,
    step: Callable[[str], None],
) -> list[Figure]:
    """Hit shares at every count of :data:`SERVER_COUNTS` (ours and verl's router), then verl's default
    mode vs direct calls on all the servers."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model)
    figures: list[Figure] = []
    step(f"routing: starting {max(SERVER_COUNTS)} vllm serve processes")
    with vllm_servers(max(SERVER_COUNTS), ServerSettings(model, max_model_len=max_model_len)) as urls:
        async with httpx.AsyncClient(timeout=60) as client:
            for count in SERVER_COUNTS:
                step(f"routing: prefix cache over {count} servers")
                figures += await _hit_shares(client, urls[:count], model, judge_config, groups, tokenizer)
        step(f"routing: verl's default mode vs direct calls, {len(urls)} servers")
        figures += await _verl_default_mode(urls, model, tokenizer, judge_config, groups, max(repeats, TIMED_RUNS))
    return figures


async def _hit_shares(
    client: httpx.AsyncClient,
    servers: Sequence[str],
    model: str,
    judge_config: CermJudgeConfig,
    groups: Sequence[BenchGroup],
    tokenizer: Any,
) -> list[Figure]:
    from verl.experimental.reward_loop.router.naive_router import NaiveRouter

    from cerm_reward.engines.openai_http import OpenAIHttpEngine
    from cerm_reward.engines.routed import RoutedHttpEngine

    n = len(groups[0].responses)
    engine_config = EngineConfig(kind="http", model=model)
    ours = await RoutedHttpEngine.connect(engine_config, servers)
    try:
        hits, shared = await _evaluation_hits(CermJudge(ours, judge_config), client, servers, groups, tokenizer)
    finally:
        await ours.aclose()
    async with served(NaiveRouter(worker_urls=list(servers)).app) as router:
        theirs = await OpenAIHttpEngine.connect(engine_config.model_copy(update={"base_url": router}))
        try:
            router_hits, router_shared = await _evaluation_hits(
                CermJudge(theirs, judge_config), client, servers, groups, tokenizer
            )
        finally:
            await theirs.aclose()
    share, router_share = hit_share(hits, shared), hit_share(router_hits, router_shared)
    where = f"S={len(servers)}, n={n}"
    how = f"{len(groups)} groups; {HITS} over the servers during the evaluations"
    return [
        at_least(
            SECTION,
            f"prefix-cache hit share of shared-prefix tokens, ours, {where}",
            share,
            (n - 1) / n,
            "",
            f"{hits:,.0f} of {shared:,} shared-prefix tokens; {how}",
        ),
        reported(
            SECTION,
            f"prefix-cache hit share of shared-prefix tokens, verl's router, {where}",
            router_share,
            "",
            f"{router_hits:,.0f} of {router_shared:,}; verl's NaiveRouter (least loaded) in front of the same servers",
        ),
        reported(SECTION, f"hit share, ours / verl's router, {where}", share / router_share, "x"),
    ]


async def _evaluation_hits(
    judge: CermJudge, client: httpx.AsyncClient, servers: Sequence[str], groups: Sequence[BenchGroup], tokenizer: Any
) -> tuple[float, int]:
    """The servers' prefix-cache hit tokens during the groups' evaluations, from cold caches, and the
    shared-prefix tokens of those evaluations (:func:`shared_prefix_tokens`)."""
    judge.cache.clear()
    await reset_prefix_caches(client, servers)
    criteria = await asyncio.gather(*(judge.get_criteria(group.query) for group in groups))
    before = await settled_hits(client, servers)
    await asyncio.gather(
        *(judge.score_group(group.query, group.responses, found) for group, (found, _) in zip(groups, criteria, strict=True))
    )
    hits = await settled_hits(client, servers) - before
    prompts = [evaluation_token_ids(judge, tokenizer, group, found) for group, (found, _) in zip(groups, criteria, strict=True)]
    return hits, shared_prefix_tokens(prompts)


def evaluation_token_ids(judge: CermJudge, tokenizer: Any, group: BenchGroup, criteria: Criteria) -> list[list[int]]:
    """The group's evaluation prompts as the server tokenizes them (chat template, no extra special tokens)."""
    query = render_query(group.query)
    texts = [
        tokenizer.apply_chat_template(
            judge.template.evaluation_messages(query, criteria.text, response), add_generation_prompt=True, tokenize=False
        )
        for response in group.responses
    ]
    return [tokenizer(text, add_special_tokens=False)["input_ids"] for text in texts]


async def reset_prefix_caches(client: httpx.AsyncClient, servers: Sequence[str]) -> None:
    replies = await asyncio.gather(*(client.post(f"{url}/reset_prefix_cache") for url in servers))
    refused = [url for url, reply in zip(servers, replies, strict=True) if reply.status_code >= 400]
    if refused:
        raise CermError(f"prefix cache not reset at {refused} (vllm serve needs VLLM_SERVER_DEV_MODE=1)")


async def settled_hits(client: httpx.AsyncClient, servers: Sequence[str]) -> float:
    """The servers' hit counters once they stop moving: a server counts a step's hits when it
    handles that step's outputs, which may come just after the last reply."""

    async def total() -> float:
        pages = await asyncio.gather(*(client.get(f"{url}/metrics") for url in servers))
        return sum(counter_total(page.text, HITS) for page in pages)

    previous = await total()
    while True:
        await asyncio.sleep(_SETTLE_S)
        current = await total()
        if current == previous:
            return current
        previous = current


@contextlib.asynccontextmanager
async def served(app: Any) -> AsyncIterator[str]:
    """``app`` served on loopback on this event loop for the block; yields its ``host:port`` (verl's form)."""
    import uvicorn

    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="on"))
    serving = asyncio.create_task(server.serve())
    while not server.started:
        if serving.done():
            serving.result()  # raises what stopped it
            raise CermError("the router stopped before it started")
        await asyncio.sleep(0.05)
    try:
        yield f"127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}"
    finally:
        server.should_exit = True
        await serving


async def _verl_default_mode(
    servers: Sequence[str],
    model: str,
    tokenizer: Any,
    judge_config: CermJudgeConfig,
    groups: Sequence[BenchGroup],
    repeats: int,
) -> list[Figure]:
    """verl's own ``RewardLoopWorker`` actors with our manager, given verl's router address and finding
    verl's reward servers by actor name (stand-ins here), vs a ``CermJudge`` on a routed engine over the
    same servers, ``score_group`` per group; the same decoded texts on both sides, cold caches every run."""
    import ray
    from verl.experimental.reward_loop.reward_loop import RewardLoopWorker
    from verl.experimental.reward_loop.router.naive_router import NaiveRouter
    from verl.protocol import pad_dataproto_to_divisor

    from cerm_reward.engines.routed import RoutedHttpEngine
    from cerm_reward.integrations.verl.batches import grpo_batch
    from cerm_reward.integrations.verl.settings import current_job_namespace
    from cerm_reward.serving.ray_pool import JudgePool

    started_ray = not ray.is_initialized()
    if started_ray:  # a cluster of its own: another Ray on this machine (a test session's) is not the bench's
        ray.init(address="local", num_cpus=max(8, os.cpu_count() or 1), include_dashboard=False, log_to_driver=False)
    pool_name = f"bench-routing-{uuid.uuid4().hex[:6]}"
    stand_in = ray.remote(num_cpus=0)(StandInRewardServer)
    stand_ins = [
        stand_in.options(name=f"vllm_server_reward_{replica}_0").remote(*_host_port(url)) for replica, url in enumerate(servers)
    ]
    workers: list[Any] = []
    direct: Engine | None = None
    try:
        batch = grpo_batch(tokenizer, [(g.query, g.responses) for g in groups], prompt_length=512, response_length=512)
        decoded = iter(tokenizer.batch_decode(batch.batch["responses"], skip_special_tokens=True))
        same_texts = [BenchGroup(g.query, [next(decoded) for _ in g.responses]) for g in groups]
        padded, _ = pad_dataproto_to_divisor(batch, REWARD_WORKERS)
        chunks = padded.chunk(REWARD_WORKERS)
        async with served(NaiveRouter(worker_urls=list(servers)).app) as router:
            config = _trainer_config(model, judge_config, pool_name)
            remote = ray.remote(RewardLoopWorker)
            workers = [remote.remote(config, router) for _ in range(REWARD_WORKERS)]
            await asyncio.gather(*(worker.__ray_ready__.remote() for worker in workers))  # each built our manager
            pool = JudgePool.connect(pool_name, current_job_namespace())
            direct = await RoutedHttpEngine.connect(EngineConfig(kind="http", model=model), servers)
            judge = CermJudge(direct, judge_config)

            async def through_verl() -> None:
                outputs = await asyncio.gather(*(w.compute_score_batch.remote(c) for w, c in zip(workers, chunks, strict=True)))
                require_engine_work([sample["reward_extra_info"] for chunk in outputs for sample in chunk])

            async def direct_calls() -> None:
                await score_groups(judge, same_texts)

            async def reset() -> None:
                judge.cache.clear()
                if not await pool.reset_caches():  # the replica's criteria cache, and every server's prefix cache
                    raise CermError("the judge pool could not reset the servers' prefix caches")

            times = await alternate({"direct": direct_calls, "verl": through_verl}, repeats, reset)
    finally:
        if direct is not None:
            await direct.aclose()
        with contextlib.suppress(LookupError):  # the workers' pool, before its creators go
            JudgePool.connect(pool_name, current_job_namespace()).shutdown()
        for actor in [*workers, *stand_ins]:
            ray.kill(actor, no_restart=True)
        if started_ray:
            ray.shutdown()
    responses = response_count(groups)
    return [
        reported(
            SECTION,
            "verl default mode (verl's reward servers)",
            responses / times["verl"],
            "resp/s",
            f"{REWARD_WORKERS} RewardLoopWorker actors, our manager routing over {len(servers)} servers",
        ),
        at_least(
            SECTION,
            f"verl default mode / direct throughput, S={len(servers)}",
            times["direct"] / times["verl"],
            0.95,
            "",
            f"direct {responses / times['direct']:.2f} resp/s (CermJudge on the routed engine), median of {repeats}",
        ),
    ]


def require_engine_work(extra_infos: Sequence[dict[str, Any]]) -> None:
    """Refuse a timed run in which verl's path scored samples without generating (an unreachable pool or
    server gives the failure policy's reward at once, and would pass for speed)."""
    unjudged = [info for info in extra_infos if info["cerm_failed"] and not info["cerm_completion_tokens"]]
    kinds = sorted({info["cerm_failure_kind"] for info in unjudged})
    if kinds:
        raise CermError(f"verl's reward workers scored samples without the judge's engine ({', '.join(kinds)})")


def _host_port(url: str) -> tuple[str, int]:
    host, _, port = url.removeprefix("http://").rpartition(":")
    return host, int(port)


def _trainer_config(model: str, judge_config: CermJudgeConfig, pool_name: str) -> Any:
    """verl's trainer config with ``reward=cerm`` and verl hosting the judge (``reward_model.enable``):
    the reward workers load the judge's tokenizer, and our manager, given the router address, finds the
    servers; the bench's fixed-length judge settings travel as ``reward.cerm.config``."""
    from cerm_reward.integrations.verl.batches import compose_trainer_config

    judge_file = Path(tempfile.mkdtemp(prefix="cerm-bench-")) / "judge.yaml"
    judge_file.write_text(yaml.safe_dump({"judge": judge_config.model_dump(mode="json")}), encoding="utf-8")
    return compose_trainer_config(
        "reward=cerm",
        f"reward.num_workers={REWARD_WORKERS}",
        f"actor_rollout_ref.model.path={model}",
        "reward.reward_model.enable=True",
        f"reward.cerm.engine.model={model}",
        f"reward.cerm.config={judge_file}",
        f"reward.cerm.pool.name={pool_name}",
        "reward.cerm.metrics.enable=false",
    )
