"""``cerm bench`` end to end: one engine in this process, then the Ray pool, then ``vllm serve``
processes for the routing section, every section in one run.

The in-process sections (criteria, pairwise, prefix, prefetch, HTTP) share one engine; it is
closed before the pool starts, so the pool's replicas never compete with an idle engine, and
it is not started at all when none of those sections is asked for.
"""

from __future__ import annotations

import os
import platform
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from cerm_reward.bench import criteria, integration, overhead, routing, scaling, versus_pairwise
from cerm_reward.bench.figures import Figure, markdown_table
from cerm_reward.bench.workload import Corpus, bench_judge_config
from cerm_reward.config import CermConfig, CermJudgeConfig, EngineConfig

SECTIONS = ("unified", "pairwise", "prefix", "prefetch", "http", "overhead", "verl", "scaling", "routing")
IN_PROCESS = frozenset({"unified", "pairwise", "prefix", "prefetch", "http"})
BEGIN, END = "<!-- cerm bench: begin -->", "<!-- cerm bench: end -->"


@dataclass(frozen=True)
class BenchOptions:
    data: Path
    model: str | None = None
    groups: int = 4
    n: int = 8
    group_sizes: tuple[int, ...] = (4, 8, 16)
    criteria_tokens: int = 32
    evaluation_tokens: int = 32
    pairwise_batch: int = 16
    """Responses per batch in the pairwise comparison (n=4: 4 groups, n=16: 1 group)."""
    repeats: int = 2
    max_model_len: int = 4096
    kv_cache_gib: float = 1.0
    sections: tuple[str, ...] = SECTIONS

    def engine_config(self) -> EngineConfig:
        return EngineConfig(
            model=self.model, enforce_eager=True, kv_cache_gib=self.kv_cache_gib, max_model_len=self.max_model_len
        )


Step = Callable[[str], None]


async def run_bench(options: BenchOptions, step: Step = lambda _: None) -> list[Figure]:
    """Every requested section; ``step`` is told each section's name as it starts (progress)."""
    from cerm_reward.engines.embedded import embedded_checkpoint

    corpus = Corpus.read(options.data)
    judge_config = bench_judge_config(options.criteria_tokens, options.evaluation_tokens)
    wanted = set(options.sections)
    figures: list[Figure] = []
    workload = corpus.groups(options.groups, options.n)

    if wanted & IN_PROCESS:
        figures += await _in_process_sections(options, judge_config, corpus, workload, step)
    if wanted & {"overhead", "verl", "scaling"}:
        figures += await _pool_sections(options, judge_config, workload, step)
    if "routing" in wanted:
        # last, with every engine above closed: it starts four vllm serve processes of its own
        model = options.model or str(embedded_checkpoint())
        figures += await routing.routing(
            model, judge_config, workload, max_model_len=options.max_model_len, repeats=options.repeats, step=step
        )
    return figures


async def _in_process_sections(
    options: BenchOptions, judge_config: CermJudgeConfig, corpus: Corpus, workload, step: Step
) -> list[Figure]:
    from cerm_reward.engines import opened_engine
    from cerm_reward.judges.cerm.judge import CermJudge

    wanted = set(options.sections)
    figures: list[Figure] = []
    step("starting the in-process engine")
    # closed before the pool sections: their replicas bring their own engines
    async with opened_engine(options.engine_config()) as engine:
        judge = CermJudge(engine, judge_config)
        if "unified" in wanted:
            step("unified criteria")
            figures += await criteria.unified_criteria(judge, {n: corpus.groups(2, n) for n in options.group_sizes})
        if "pairwise" in wanted:
            step("pointwise vs pairwise")
            batches = {n: corpus.groups(max(1, options.pairwise_batch // n), n) for n in options.group_sizes}
            figures += await versus_pairwise.pointwise_vs_pairwise(judge, batches, target_n=options.n)
        if "prefix" in wanted:
            step("prefix reuse")
            figures += await criteria.prefix_reuse(judge, corpus.groups(1, options.n)[0])
        if "prefetch" in wanted:
            step("prefetch")
            figures += await criteria.prefetch(judge, workload)
        if "http" in wanted:
            step("HTTP server vs in-process")
            figures += await integration.http_vs_in_process(judge, workload, options.repeats)
    return figures


async def _pool_sections(options: BenchOptions, judge_config: CermJudgeConfig, workload, step: Step) -> list[Figure]:
    import ray

    from cerm_reward.serving.ray_pool import JudgePool, PoolConfig

    wanted = set(options.sections)
    if not ray.is_initialized():
        ray.init(address="local", num_cpus=max(8, os.cpu_count() or 1), include_dashboard=False, log_to_driver=False)
    name = f"bench-{uuid.uuid4().hex[:6]}"
    cerm = CermConfig(engine=options.engine_config(), judge=judge_config)
    step("starting a 1-replica judge pool")
    one = JudgePool.create(cerm, PoolConfig(name=name, replicas=1), replica=overhead.BenchReplica)
    pools = [one]
    figures: list[Figure] = []
    try:
        (replica,) = await one.ready()
        with scaling.PeakRss(replica["pid"]) as peak:
            if "overhead" in wanted:
                step("overhead: pool vs raw engine")
                figures += await overhead.measure_overhead(one, workload, options.repeats)
            if "verl" in wanted:
                step("verl reward loop vs direct")
                figures += await integration.verl_vs_direct(one, name, workload, options.repeats)
        figures += await scaling.memory_and_tokens(one, peak)
        if "scaling" in wanted:
            step("starting a 2-replica judge pool")
            two = JudgePool.create(cerm, PoolConfig(name=f"{name}-x2", replicas=2))
            pools.append(two)
            await two.ready()
            step("scaling: 1 vs 2 replicas")
            figures += await scaling.replicas(one, two, workload, options.repeats)
    finally:
        for pool in pools:
            pool.shutdown()
    return figures


def machine_line(model_id: str) -> str:
    import vllm

    return (
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, {platform.system()}; "
        f"vLLM {vllm.__version__}; judge {model_id}"
    )


def write_report(
    path: Path, figures: Sequence[Figure], command: str, machine: str, markers: tuple[str, str] = (BEGIN, END)
) -> None:
    """Replace the block between ``markers`` in ``path`` (created if missing); prose around it stays.

    The training bench has markers of its own, so each run rewrites only its own figures."""
    begin, end = markers
    block = "\n".join([begin, f"Command: `{command}`", "", f"Machine: {machine}", "", markdown_table(figures), end])
    text = path.read_text() if path.exists() else "# Performance\n\n"
    if begin in text and end in text:
        head, rest = text.split(begin, 1)
        text = head + block + rest.split(end, 1)[1]
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
