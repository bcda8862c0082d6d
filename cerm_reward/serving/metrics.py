"""Prometheus metrics of the judge server: request counters and latency, plus the judge's own counters.

Requests are labelled by route template (``/get_reward``; ``unmatched`` for any unknown path),
so made-up paths cannot grow the label set; a route that raised counts as 500.

The judge's counters come from a statistics snapshot taken when /metrics is scraped (from the
judge in this process or summed over the pool's replicas), so they are never out of step.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 40, 60, 90, 120, 180, 300)


class JudgeCollector(Collector):
    """Exposes the last judge statistics snapshot (see :meth:`cerm_reward.stats.JudgeStats.snapshot`)."""

    def __init__(self) -> None:
        self.snapshot: dict[str, Any] = {}

    def collect(self) -> Iterator[Metric]:
        stats = self.snapshot
        if not stats:
            return
        failures = CounterMetricFamily("cerm_judge_failures", "Responses left without a judge score, by kind", labels=["kind"])
        for kind, count in sorted(stats.get("failures", {}).items()):
            failures.add_metric([kind], count)
        attempts = CounterMetricFamily(
            "cerm_judge_attempt_failures", "Failed judge attempts (incl. recovered), by kind", labels=["kind"]
        )
        for kind, count in sorted(stats.get("attempt_failures", {}).items()):
            attempts.add_metric([kind], count)
        lookups = CounterMetricFamily("cerm_criteria_cache_lookups", "Criteria cache lookups by result", labels=["result"])
        cache = stats.get("criteria_cache", {})
        for result, key in (("hit", "hits"), ("miss", "misses"), ("joined", "joined")):
            lookups.add_metric([result], cache.get(key, 0))
        tokens = CounterMetricFamily("cerm_judge_tokens", "Judge tokens by direction", labels=["direction"])
        for direction in ("prompt", "completion", "cached_prompt"):
            tokens.add_metric([direction], stats.get(f"{direction}_tokens", 0))
        yield failures
        yield attempts
        yield lookups
        yield tokens
        yield CounterMetricFamily(
            "cerm_criteria_generations", "Criteria turns sent to the engine", value=stats.get("criteria_generations", 0)
        )
        yield CounterMetricFamily("cerm_judged_responses", "Responses judged", value=stats.get("responses", 0))
        yield CounterMetricFamily("cerm_judge_repairs", "Repair turns that gave a score", value=stats.get("repairs_succeeded", 0))


class AdmissionCollector(Collector):
    """What the server holds now against its admission bounds (in-flight samples, pending prefetches)."""

    def __init__(self) -> None:
        self.snapshot: dict[str, int] = {}

    def collect(self) -> Iterator[Metric]:
        held = GaugeMetricFamily("cerm_admitted", "Work admitted and not finished, by kind", labels=["kind"])
        for kind, count in sorted(self.snapshot.items()):
            held.add_metric([kind], count)
        yield held


class ServerMetrics:
    """One registry per app, so several servers (or tests) in one process do not collide."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter("cerm_requests", "HTTP requests", ["endpoint", "status"], registry=self.registry)
        self.latency = Histogram(
            "cerm_request_latency_seconds", "HTTP request latency", ["endpoint"], buckets=LATENCY_BUCKETS, registry=self.registry
        )
        self.judge = JudgeCollector()
        self.registry.register(self.judge)
        self.admission = AdmissionCollector()
        self.registry.register(self.admission)
