"""Shared real parts, each started at most once per test session: one in-process vLLM engine,
one `vllm serve` process and one local Ray cluster.

Both engines run the embedded default judge (SmolLM2-135M on the CPU) with short token
budgets. The server is started in the background at session start so that it
boots while the fast tests run. A small Critic-RM checkpoint, cut from the same weights,
serves the Critic-RM tests and the tests that host it like CE-RM.

A test that asks for one of these parts is marked for it at collection (`engine`, `server`,
`ray`), so `make test-fast` (which deselects those markers) can never start one by accident.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from cerm_reward.config import EngineConfig
from tests.critic_rm.helpers import SMALL_LAYERS

os.environ.setdefault("VLLM_LOGGING_LEVEL", "WARNING")
# vLLM's CPU worker binds its threads to all allowed cores but one, which it leaves to the engine
# core's scheduler; on two cores that is one thread of compute. Every engine the suite starts
# (in-process, `vllm serve`, `cerm serve`, a replica) inherits this binding to every core instead:
# the eval tests ran 1.5x faster with it (153 s -> 100 s for LLMBar, RM-Bench and the needle run).
os.environ.setdefault("VLLM_CPU_OMP_THREADS_BIND", ",".join(str(cpu) for cpu in sorted(os.sched_getaffinity(0))))
# vLLM's CPU build runs its one worker in a process of its own (the "mp" executor), spawned by the
# engine core, which then busy-waits on it; with this unset, the worker runs inside the engine core
# (the "uni" executor, what vLLM picks on a GPU at tensor-parallel size 1): one fewer process to
# import vLLM into and no busy-wait. Three engine tests went from 130 s to 98 s. The abuse tests,
# which kill engines' process trees, keep vLLM's CPU default (`VLLM_CPU_DEFAULT_EXECUTOR`).
os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
VLLM_CPU_DEFAULT_EXECUTOR = {"VLLM_ENABLE_V1_MULTIPROCESSING": "1"}
"""What a process that must run vLLM's own CPU default (engine core + worker process) adds to its environment."""
SERVED_NAME = "smollm2-judge"
TEST_CONTEXT = 4096
ENGINE_CONFIG = EngineConfig(enforce_eager=True, kv_cache_gib=1.0, max_model_len=TEST_CONTEXT)
_server: dict[str, object] = {}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _start_server() -> None:
    from cerm_reward.engines.embedded import embedded_checkpoint

    port = free_port()
    log = open(Path(os.environ.get("TMPDIR", "/tmp")) / f"cerm-test-vllm-serve-{port}.log", "w")  # noqa: SIM115 - lives as long as the server
    command = [
        sys.executable, "-m", "vllm.entrypoints.openai.api_server",
        "--model", str(embedded_checkpoint()), "--served-model-name", SERVED_NAME,
        "--host", "127.0.0.1", "--port", str(port), "--dtype", "float32", "--enforce-eager",
        "--max-model-len", str(TEST_CONTEXT), "--kv-cache-memory-bytes", str(2**30),
        "--enable-prompt-tokens-details",
    ]  # fmt: skip
    _server.update(
        process=subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT), url=f"http://127.0.0.1:{port}", log=log
    )


def wait_until_healthy(process: subprocess.Popen, url: str, *, timeout_s: float, period_s: float) -> bool:
    """Whether ``url``'s ``/health`` said 200 before ``timeout_s``; False as soon as ``process`` exits."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and process.poll() is None:
        try:
            if httpx.get(f"{url}/health", timeout=max(1.0, period_s * 2)).status_code == 200:
                return True
        except httpx.HTTPError:
            pass
        time.sleep(period_s)
    return False


FIXTURE_MARKERS = {"embedded_engine": "engine", "vllm_server": "server", "local_ray": "ray"}
"""The session part a fixture starts -> the marker its tests carry (registered in setup.cfg)."""


HEAVY_MARKERS = (*FIXTURE_MARKERS.values(), "network", "slow")
"""What `make test-fast` deselects."""


@pytest.hookimpl(tryfirst=True)  # before `-m` deselects, so the markers added here count
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        for fixture in FIXTURE_MARKERS.keys() & set(getattr(item, "fixturenames", ())):
            item.add_marker(FIXTURE_MARKERS[fixture])
    run_light_modules_first(items)


def run_light_modules_first(items: list[pytest.Item]) -> None:
    """Modules with no heavy test run first, in their usual order, then the rest in theirs.

    `vllm serve` and the install checks start when collection ends and take a minute or two of
    the two cores; the light tests (a minute of one core) fit beside them, where the engine
    tests, had they come first, would have fought them for the CPU. Whole modules move, so a
    module's fixtures are still set up once.
    """
    heavy = {module_of(item) for item in items if any(item.get_closest_marker(m) for m in HEAVY_MARKERS)}
    items.sort(key=lambda item: module_of(item) in heavy)  # stable: the usual order inside each part


def module_of(item: pytest.Item) -> str:
    return item.nodeid.split("::", 1)[0]


def pytest_collection_finish(session: pytest.Session) -> None:
    if session.config.option.collectonly:
        return  # nothing will run: start nothing
    if any(item.get_closest_marker("server") for item in session.items):
        _start_server()
    if any(item.get_closest_marker("network") for item in session.items):
        from tests.install import background

        background.started()  # pip resolves beside the light tests and the engine tests, not after them


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    from tests.install import background

    background.stop()
    process = _server.get("process")
    if isinstance(process, subprocess.Popen):
        process.terminate()
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()


@pytest.fixture(scope="session")
def vllm_server() -> str:
    """Base URL of a healthy `vllm serve` on loopback serving the embedded judge."""
    if "process" not in _server:
        _start_server()
    process, url = _server["process"], str(_server["url"])
    assert isinstance(process, subprocess.Popen)
    if wait_until_healthy(process, url, timeout_s=300, period_s=1):
        return url
    if process.poll() is not None:
        pytest.fail(f"vllm serve exited with {process.returncode}; see {_server['log'].name}")  # type: ignore[union-attr]
    pytest.fail("vllm serve did not become healthy within 300 s")


@pytest.fixture(scope="session")
async def embedded_engine():
    """The real in-process vLLM engine on the embedded judge, shared by the session."""
    from cerm_reward.engines import open_engine

    engine = await open_engine(ENGINE_CONFIG)
    yield engine
    await engine.aclose()


@pytest.fixture(scope="session")
def small_base_model(tmp_path_factory) -> Path:
    """The embedded checkpoint cut to its first ``SMALL_LAYERS`` decoder layers, saved as a normal checkpoint."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from cerm_reward.engines.embedded import embedded_checkpoint

    source = embedded_checkpoint()
    model = AutoModelForCausalLM.from_pretrained(str(source), dtype=torch.float32)
    model.model.layers = model.model.layers[:SMALL_LAYERS]
    model.config.num_hidden_layers = SMALL_LAYERS
    target = tmp_path_factory.mktemp("smollm2-4-layers")
    model.save_pretrained(target)
    AutoTokenizer.from_pretrained(str(source)).save_pretrained(target)
    return target


@pytest.fixture(scope="session")
def checkpoint(small_base_model, tmp_path_factory):
    """A Critic-RM checkpoint (untrained head) written by the same save path training uses."""
    from transformers import AutoTokenizer

    from cerm_reward.judges.critic_rm.model import CriticRewardModel
    from cerm_reward.judges.critic_rm.sequences import InputLimits

    folder = tmp_path_factory.mktemp("critic-checkpoint")
    model = CriticRewardModel.from_base(small_base_model, "critic-v1", InputLimits(48, 48, 32))
    return model.save(folder, AutoTokenizer.from_pretrained(str(small_base_model)))


def _session_ray():
    """This process's local Ray cluster, started if there is none (tests/cluster ends its simulated one)."""
    ray = pytest.importorskip("ray")
    if not ray.is_initialized():
        ray.init(num_cpus=4, include_dashboard=False, log_to_driver=False)
    return ray


@pytest.fixture(scope="session")
def ray_cluster():
    """One local Ray cluster for the session: starting one costs 5 to 10 s on two cores, and the
    pool and verl tests need only a few logical CPUs of it (their actors ask for 0.1 to 1)."""
    ray = _session_ray()
    yield ray
    ray.shutdown()


@pytest.fixture
def local_ray(ray_cluster):
    """The session's Ray cluster, left as the test found it: named actors and placement groups the
    test created (judge pools, verl's reward-loop workers, also when the test failed before its own
    shutdown) are removed, so a name or a CPU held by one test cannot leak into the next."""
    ray = _session_ray()  # started again if tests/cluster's simulated cluster replaced it meanwhile
    actors, groups = _named_actors(ray), _placement_groups(ray)
    yield
    from ray.util.placement_group import PlacementGroup, remove_placement_group

    for name, namespace in _named_actors(ray) - actors:
        with contextlib.suppress(ValueError):  # it went away on its own meanwhile
            ray.kill(ray.get_actor(name, namespace=namespace), no_restart=True)
    for group_id in _placement_groups(ray) - groups:
        remove_placement_group(PlacementGroup(ray.PlacementGroupID(bytes.fromhex(group_id))))


def _named_actors(ray) -> set[tuple[str, str]]:
    return {(actor["name"], actor["namespace"]) for actor in ray.util.list_named_actors(all_namespaces=True)}


def _placement_groups(ray) -> set[str]:
    return {group_id for group_id, info in ray.util.placement_group_table().items() if info["state"] != "REMOVED"}
