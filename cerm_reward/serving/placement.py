"""Where the judge pool's replicas go: a placement group reserved up front, with a deadline.

A replica created as a plain actor waits in ``PENDING_CREATION`` for as long as the cluster
lacks its resources, and every call to it waits with it: on a cluster shared with verl,
whose STRICT_PACK placement groups carry no node constraint, that was a hang at the first
reward call. Reserving one bundle per replica in a placement group makes the question
"does the judge fit?" answerable once, at start-up: either every bundle is placed within
the deadline, or the reservation is withdrawn and the error says which resources are
missing. Reserve it before verl creates its resource pools and verl's groups can only take
what is left.

A vLLM engine needs GPUs assigned by Ray: a replica with none would see every GPU of its
node, and one with fewer than its tensor-parallel size cannot start.
"""

from __future__ import annotations

from collections.abc import Mapping

import ray
from ray.util.placement_group import PlacementGroup, placement_group, remove_placement_group

from cerm_reward.config import CermConfig
from cerm_reward.errors import CermError, ConfigError

GPU = "GPU"


class PlacementTimeoutError(CermError):
    """The pool's bundles were not all placed within the deadline; the message names what is missing."""


def bundle_of(num_cpus: float, num_gpus: float, resources: Mapping[str, float]) -> dict[str, float]:
    """One replica's reservation (zero amounts left out: Ray refuses them in a bundle)."""
    bundle = {"CPU": num_cpus, GPU: num_gpus, **resources}
    return {name: float(amount) for name, amount in bundle.items() if amount > 0}


def check_engine_devices(judge: CermConfig, num_gpus: float, cluster_gpus: float) -> None:
    """Refuse a replica that would host a vLLM engine on GPUs Ray did not give it.

    ``cluster_gpus`` is the cluster's GPU total: on a CPU-only cluster an in-process engine
    needs no GPU. An HTTP engine needs none anywhere.
    """
    engine = judge.judge_engine
    if engine.kind != "vllm":
        return
    if num_gpus == 0 and cluster_gpus > 0:
        raise ConfigError(
            f"pool.num_gpus is 0 on a cluster with {cluster_gpus:g} GPUs: Ray would give the judge's vLLM engine no GPU "
            f"and it would see (and fill) every GPU of its node beside the trainer's workers; set pool.num_gpus to "
            f"engine.tensor_parallel_size ({engine.tensor_parallel_size})"
        )
    if 0 < num_gpus < engine.tensor_parallel_size:
        raise ConfigError(
            f"pool.num_gpus={num_gpus:g} is below engine.tensor_parallel_size={engine.tensor_parallel_size}: each replica's "
            f"vLLM engine needs that many whole GPUs (a fraction never schedules beside verl's whole-GPU bundles)"
        )


def visible_devices() -> str:
    """The GPUs Ray assigned to this process, as ``CUDA_VISIBLE_DEVICES`` should read ("" for none)."""
    return ",".join(str(device) for device in ray.get_runtime_context().get_accelerator_ids().get(GPU, []))


def reserve(
    name: str, bundle: dict[str, float], count: int, strategy: str, timeout_s: float, *, detached: bool
) -> PlacementGroup:
    """``count`` bundles placed with ``strategy`` within ``timeout_s``, or :class:`PlacementTimeoutError`."""
    group = placement_group([dict(bundle)] * count, strategy=strategy, name=name, lifetime="detached" if detached else None)
    ready, _ = ray.wait([group.ready()], timeout=timeout_s)
    if ready:
        return group
    remove_placement_group(group)  # a half-placed reservation would hold resources nobody can use
    raise PlacementTimeoutError(
        f"judge pool placement {name!r}: {count} x {bundle} ({strategy}) not placed within {timeout_s:g} s; "
        + missing_resources(bundle, count, ray.available_resources(), ray.cluster_resources())
    )


def missing_resources(bundle: Mapping[str, float], count: int, available: Mapping[str, float], total: Mapping[str, float]) -> str:
    """What the reservation lacks, resource by resource, against what is free and what exists."""
    lines = []
    for name, amount in sorted(bundle.items()):
        need = amount * count
        free = available.get(name, 0.0)
        if free + 1e-9 < need:
            lines.append(f"{name}: need {need:g}, {free:g} free of {total.get(name, 0.0):g} in the cluster")
    if not lines:
        per_node = ", ".join(f"{name}={amount:g}" for name, amount in sorted(bundle.items()))
        return f"the totals fit but no node (or spread of nodes) holds a bundle of {per_node}; check per-node resources"
    return "missing " + "; ".join(lines)


def cluster_gpus() -> float:
    """GPUs in the Ray cluster (logical ones included): 0 on a CPU-only cluster."""
    return float(ray.cluster_resources().get(GPU, 0.0))
